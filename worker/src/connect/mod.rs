//! Connecting to the database as libpq would: parameters from `--db`, a
//! service file, the `PG*` environment and the password file
//! (`params`), TLS with libpq's sslmodes (`tls`), hosts tried in order,
//! and one line saying why when it fails.

pub mod params;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use postgres::config::{SslMode as PgSslMode, SslNegotiation};
use postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use params::{Addr, Endpoint, Outside, Settings, SslMode};

/// The OS user, as libpq takes it (the effective user's passwd entry),
/// with its home directory.
fn os_user() -> (Option<String>, Option<PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = uid.and_then(|uid| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid))
                .then(|| (f[0].to_string(), PathBuf::from(f[5])))
        })
    });
    let name = entry
        .as_ref()
        .map(|e| e.0.clone())
        .or_else(|| std::env::var("USER").ok());
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| entry.map(|e| e.1));
    (name, home)
}

/// The settings for `--db` (or none) in this process's environment.
pub fn settings(db: Option<&str>) -> Result<Settings, String> {
    let env = |k: &str| std::env::var(k).ok();
    if db.is_none_or(|d| d.trim().is_empty()) && !params::environment_names_a_database(&env) {
        return Err(
            "no database given: pass --db (or PGAI_MIGRATE_DB), or set PGHOST, PGDATABASE or PGSERVICE"
                .into(),
        );
    }
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let (os_user, home) = os_user();
    // libpq's default socket directory (Debian's, else upstream's).
    let default_socket_dir = ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    params::resolve(
        db,
        &Outside {
            env: &env,
            read: &read,
            home,
            os_user,
            default_socket_dir,
        },
    )
}

static PGPASS_WARNED: AtomicBool = AtomicBool::new(false);

/// The password file's text, unless it is missing, not a plain file, or
/// readable by others (refused with libpq's warning, once).
fn read_pgpass(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    if m.mode() & 0o077 != 0 {
        if !PGPASS_WARNED.swap(true, Ordering::Relaxed) {
            eprintln!(
                "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            );
        }
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn base_config(s: &Settings, e: &Endpoint, password: Option<&str>) -> Config {
    let mut c = Config::new();
    c.user(&s.user)
        .dbname(&s.dbname)
        .application_name(&s.application_name)
        .port(e.port)
        .keepalives(s.keepalives)
        .target_session_attrs(s.target_session_attrs)
        .channel_binding(s.channel_binding);
    match &e.addr {
        Addr::Unix(dir) => {
            c.host_path(dir);
        }
        Addr::Tcp { host, hostaddr } => {
            c.host(host);
            if let Some(a) = hostaddr {
                c.hostaddr(*a);
            }
        }
    }
    if let Some(p) = password {
        c.password(p);
    }
    if let Some(o) = &s.options {
        c.options(o);
    }
    if let Some(t) = s.connect_timeout {
        c.connect_timeout(t);
    }
    if let Some(d) = s.keepalives_idle {
        c.keepalives_idle(d);
    }
    if let Some(d) = s.keepalives_interval {
        c.keepalives_interval(d);
    }
    if let Some(n) = s.keepalives_count {
        c.keepalives_retries(n);
    }
    if let Some(d) = s.tcp_user_timeout {
        c.tcp_user_timeout(d);
    }
    c
}

/// One connection attempt's failure: what the server said (which may be
/// worth a retry with the other encryption, as libpq does for `allow`
/// and `prefer`), no TLS on the server, a failed TLS handshake (an
/// untrusted certificate, say: `prefer` then goes on without TLS, as
/// libpq does), or anything else.
enum Failure {
    Server(String),
    NoTlsOnServer,
    Handshake(String),
    Other(String),
}

impl Failure {
    fn text(&self) -> String {
        match self {
            Failure::Server(t) | Failure::Handshake(t) | Failure::Other(t) => t.clone(),
            Failure::NoTlsOnServer => "server does not support SSL, but SSL was required".into(),
        }
    }
}

fn classify(e: postgres::Error, pgpass: Option<&Path>) -> Failure {
    if let Some(db) = e.as_db_error() {
        let mut t = format!("{}:  {}", db.severity(), db.message());
        if let (Some(p), "28P01") = (pgpass, db.code().code()) {
            t.push_str(&format!(
                " (password retrieved from file \"{}\")",
                p.display()
            ));
        }
        return Failure::Server(t);
    }
    let mut parts = vec![e.to_string()];
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        if let Some(t) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(rustls_text)
            .or_else(|| c.downcast_ref::<rustls::Error>().map(rustls_text))
        {
            parts.push(t);
            break;
        }
        let t = c.to_string();
        if t == "server does not support TLS" {
            return Failure::NoTlsOnServer;
        }
        if parts.last() != Some(&t) {
            parts.push(t);
        }
        cause = c.source();
    }
    if parts[0] == "timeout waiting for server" {
        return Failure::Other("timeout expired (connect_timeout)".into());
    }
    if parts[0] == "error performing TLS handshake" {
        return Failure::Handshake(parts.join(": "));
    }
    Failure::Other(parts.join(": "))
}

/// A name as rustls presents it (`DnsName("db.example")`,
/// `IpAddress(10.0.0.1)`), without the wrapping.
fn presented_name(p: &str) -> &str {
    match (p.find('('), p.rfind(')')) {
        (Some(a), Some(b)) if a < b => p[a + 1..b].trim_matches('"'),
        _ => p,
    }
}

fn rustls_text(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => {
            "certificate verify failed: the server's certificate is not signed by a trusted certificate authority (sslrootcert)".into()
        }
        E::InvalidCertificate(C::NotValidForNameContext { expected, presented }) => format!(
            "server certificate for {} does not match host name \"{}\"",
            presented
                .iter()
                .map(|p| format!("\"{}\"", presented_name(p)))
                .collect::<Vec<_>>()
                .join(", "),
            expected.to_str()
        ),
        E::InvalidCertificate(C::NotValidForName) => {
            "server certificate does not match the host name".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate verify failed: the server's certificate has expired".into()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "certificate verify failed: the server's certificate is not valid yet".into()
        }
        E::InvalidCertificate(c) => format!("certificate verify failed: {c:?}"),
        E::AlertReceived(A::CertificateRequired) => {
            "the server requires a client certificate (sslcert, sslkey)".into()
        }
        E::AlertReceived(a @ (A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::UnsupportedCertificate)) => {
            format!("the server refused the client certificate (TLS alert {a:?})")
        }
        E::NoApplicationProtocol | E::AlertReceived(A::NoApplicationProtocol) => {
            "the server did not accept the ALPN protocol \"postgresql\" (direct TLS needs PostgreSQL 17 or later)".into()
        }
        other => other.to_string(),
    }
}

fn attempt(
    s: &Settings,
    e: &Endpoint,
    password: Option<&str>,
    pgpass: Option<&Path>,
    tls: bool,
) -> Result<Client, Failure> {
    let mut c = base_config(s, e, password);
    let res = if tls {
        let config = tls::client_config(&s.tls).map_err(Failure::Other)?;
        c.ssl_mode(PgSslMode::Require);
        if s.tls.direct {
            c.ssl_negotiation(SslNegotiation::Direct);
        }
        c.connect(MakeRustlsConnect::new(config))
    } else {
        c.ssl_mode(PgSslMode::Disable);
        c.connect(NoTls)
    };
    res.map_err(|err| classify(err, pgpass))
}

fn connect_endpoint(s: &Settings, e: &Endpoint) -> Result<Client, String> {
    let (password, from_file) = match &s.password {
        Some(p) => (Some(p.clone()), None),
        None => {
            let pw = read_pgpass(&s.passfile).and_then(|t| s.password_for(e, Some(&t)));
            let from = pw.as_ref().map(|_| s.passfile.as_path());
            (pw, from)
        }
    };
    let pw = password.as_deref();
    // sslmode does not apply to Unix-domain sockets (libpq).
    if matches!(e.addr, Addr::Unix(_)) {
        return attempt(s, e, pw, from_file, false).map_err(|f| f.text());
    }
    let first = match s.tls.mode {
        SslMode::Disable | SslMode::Allow => attempt(s, e, pw, from_file, false),
        _ => attempt(s, e, pw, from_file, true),
    };
    match (s.tls.mode, first) {
        (_, Ok(c)) => Ok(c),
        // allow: plaintext first, TLS if the server refused it.
        (SslMode::Allow, Err(Failure::Server(t))) => {
            attempt(s, e, pw, from_file, true).map_err(|f| format!("{t}; with SSL: {}", f.text()))
        }
        // prefer: TLS first, plaintext if the server has none, refused the
        // TLS session, or the handshake failed.
        (SslMode::Prefer, Err(Failure::NoTlsOnServer)) => {
            attempt(s, e, pw, from_file, false).map_err(|f| f.text())
        }
        (SslMode::Prefer, Err(Failure::Server(t) | Failure::Handshake(t))) => {
            attempt(s, e, pw, from_file, false)
                .map_err(|f| format!("{t}; without SSL: {}", f.text()))
        }
        (_, Err(f)) => Err(f.text()),
    }
}

/// Connects to the first host of the list that accepts; the error names
/// each host tried and why it failed, on one line, without the password.
pub fn connect(s: &Settings) -> Result<Client, String> {
    let mut errors = Vec::new();
    for e in &s.endpoints {
        match connect_endpoint(s, e) {
            Ok(c) => return Ok(c),
            Err(t) => errors.push(format!(
                "connection to {} failed: {}",
                e.describe(),
                t.replace('\n', " ")
            )),
        }
    }
    Err(errors.join("; "))
}
