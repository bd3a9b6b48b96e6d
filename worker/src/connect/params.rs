//! Connection parameters read the way libpq reads them, without touching
//! the network: a conninfo string or URI, then a service file's section,
//! then the `PG*` environment, then the defaults (libpq's order). The
//! password file's format and matching live here too. Everything takes the
//! environment and the files' text as arguments, so it is unit-tested
//! without a server.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Keywords with the environment variable libpq reads for each. Those
/// refused with a reason are below (`unsupported`).
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("dbname", Some("PGDATABASE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("service", Some("PGSERVICE")),
    ("servicefile", Some("PGSERVICEFILE")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("sslmode", Some("PGSSLMODE")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslsni", Some("PGSSLSNI")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslpassword", None),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("require_auth", Some("PGREQUIREAUTH")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("gssdelegation", Some("PGGSSDELEGATION")),
    ("replication", None),
];

/// Keywords libpq knows whose meaning this worker does not implement: a
/// value for one is refused rather than silently ignored (most of them
/// tighten security). The values in the second column are accepted
/// because they mean "off" (or libpq's default).
const UNSUPPORTED: &[(&str, &[&str])] = &[
    ("sslcrl", &[]),
    ("sslcrldir", &[]),
    ("sslpassword", &[]),
    ("requirepeer", &[]),
    ("require_auth", &[]),
    ("krbsrvname", &[]),
    ("gsslib", &[]),
    ("gssdelegation", &["0"]),
    ("replication", &["0", "false", "off", "no"]),
    ("gssencmode", &["disable", "prefer"]),
    ("sslcertmode", &["allow"]),
    ("load_balance_hosts", &["disable"]),
    (
        "client_encoding",
        &["UTF8", "utf8", "UTF-8", "utf-8", "auto"],
    ),
];

fn env_var(keyword: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .find(|(k, _)| *k == keyword)
        .and_then(|(_, e)| *e)
}

fn known(keyword: &str) -> bool {
    KEYWORDS.iter().any(|(k, _)| *k == keyword)
}

/// Splits a conninfo string (`key=value …`) or a `postgres://` /
/// `postgresql://` URI into keyword/value pairs, refusing unknown keywords
/// as libpq does.
pub fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, String> {
    let pairs = if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        parse_uri(s)?
    } else {
        parse_kv(s)?
    };
    for (k, _) in &pairs {
        if !known(k) {
            return Err(format!("invalid connection option \"{k}\""));
        }
    }
    Ok(pairs)
}

fn parse_kv(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = it.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            it.next();
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        if it.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            ));
        }
        while it.peek().is_some_and(|c| c.is_whitespace()) {
            it.next();
        }
        let mut value = String::new();
        if it.peek() == Some(&'\'') {
            it.next();
            loop {
                match it.next() {
                    None => {
                        return Err("unterminated quoted string in connection info string".into())
                    }
                    Some('\\') => match it.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(
                                "unterminated quoted string in connection info string".into()
                            )
                        }
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = it.peek() {
                if c.is_whitespace() {
                    break;
                }
                it.next();
                if c == '\\' {
                    if let Some(n) = it.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoded token: \"{}\"", &s[i..]))?;
            if hex == 0 {
                return Err("forbidden value %00 in percent-encoded value".into());
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoded value is not UTF-8".into())
}

/// `postgresql://[user[:password]@][host][:port][,host[:port]…][/dbname][?k=v&…]`
fn parse_uri(s: &str) -> Result<Vec<(String, String)>, String> {
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let mut out = Vec::new();
    let hostpart = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".into(), percent_decode(user)?));
            }
            if let Some(p) = password {
                out.push(("password".into(), percent_decode(p)?));
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    if !hostpart.is_empty() {
        let (mut hosts, mut ports) = (Vec::new(), Vec::new());
        for spec in hostpart.split(',') {
            let (host, port) = if let Some(r) = spec.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| format!("missing \"]\" in IPv6 host address in URI: \"{s}\""))?;
                let after = &r[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => p,
                    None if after.is_empty() => "",
                    None => {
                        return Err(format!(
                            "unexpected character after IPv6 host address in URI: \"{s}\""
                        ))
                    }
                };
                (&r[..end], port)
            } else {
                match spec.rfind(':') {
                    Some(i) => (&spec[..i], &spec[i + 1..]),
                    None => (spec, ""),
                }
            };
            hosts.push(percent_decode(host)?);
            ports.push(percent_decode(port)?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("dbname".into(), percent_decode(db)?));
    }
    for param in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = param.split_once('=').ok_or_else(|| {
            format!("missing key/value separator \"=\" in URI query parameter: \"{param}\"")
        })?;
        let (k, v) = (percent_decode(k)?, percent_decode(v)?);
        // JDBC's spelling, which libpq accepts too.
        if k == "ssl" && v == "true" {
            out.push(("sslmode".into(), "require".into()));
        } else {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// The section `[name]` of a service file, or None if the file has none.
pub fn service_section(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, String> {
    let mut in_section = false;
    let mut found = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            if found && in_section {
                break;
            }
            in_section = group.strip_suffix(']').map(str::trim) == Some(name);
            found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            format!(
                "syntax error in service file \"{}\", line {}",
                file.display(),
                n + 1
            )
        })?;
        let (k, v) = (k.trim(), v.trim());
        if k == "service" || k == "servicefile" {
            return Err(format!(
                "nested \"{k}\" specifications not supported in service file \"{}\", line {}",
                file.display(),
                n + 1
            ));
        }
        if !known(k) {
            return Err(format!(
                "syntax error in service file \"{}\", line {}: invalid connection option \"{k}\"",
                file.display(),
                n + 1
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(found.then_some(out))
}

/// One line of a password file, split at unescaped colons with `\:` and
/// `\\` unescaped; `*` stays a wildcard only where it is the whole field,
/// so a literal `*` is written `\*`.
fn pgpass_fields(line: &str) -> Vec<(String, bool)> {
    let mut fields = Vec::new();
    let (mut cur, mut escaped_any) = (String::new(), false);
    let mut it = line.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    cur.push(n);
                    escaped_any = true;
                }
            }
            ':' if fields.len() < 4 => {
                fields.push((std::mem::take(&mut cur), escaped_any));
                escaped_any = false;
            }
            c => cur.push(c),
        }
    }
    fields.push((cur, escaped_any));
    fields
}

/// The password a password file gives for a connection: the first line
/// whose host, port, database and user fields match (`*` matches any).
pub fn pgpass_lookup(
    text: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f = pgpass_fields(line);
        if f.len() != 5 {
            continue;
        }
        let matches = |(field, escaped): &(String, bool), want: &str| {
            (field == "*" && !escaped) || field == want
        };
        if matches(&f[0], host)
            && matches(&f[1], port)
            && matches(&f[2], dbname)
            && matches(&f[3], user)
        {
            return Some(f[4].0.clone());
        }
    }
    None
}

/// The six sslmodes with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(format!("invalid sslmode value: \"{s}\"")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The operating system's trust store (`sslrootcert=system`).
    System,
    /// A PEM file; `explicit` when given rather than the default
    /// `~/.postgresql/root.crt`.
    File { path: PathBuf, explicit: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(keyword: &str, s: &str) -> Result<Option<Self>, String> {
        match s {
            "" => Ok(None),
            "TLSv1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLSv1.3" => Ok(Some(TlsVersion::Tls13)),
            "TLSv1" | "TLSv1.1" => Err(format!(
                "{keyword} \"{s}\" is not supported by pgai-migrate-worker (TLSv1.2 or TLSv1.3)"
            )),
            _ => Err(format!("invalid {keyword} value: \"{s}\"")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub direct: bool,
    pub root: RootCert,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub sni: bool,
    pub min_version: TlsVersion,
    pub max_version: Option<TlsVersion>,
}

/// Where one host of the list is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp {
        host: String,
        hostaddr: Option<IpAddr>,
    },
    /// A socket directory.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

impl Endpoint {
    /// libpq's wording, for messages.
    pub fn describe(&self) -> String {
        match &self.addr {
            Addr::Unix(dir) => format!(
                "server on socket \"{}/.s.PGSQL.{}\"",
                dir.display(),
                self.port
            ),
            Addr::Tcp {
                host,
                hostaddr: Some(a),
            } if host != &a.to_string() => {
                format!("server at \"{host}\" ({a}), port {}", self.port)
            }
            Addr::Tcp { host, .. } => format!("server at \"{host}\", port {}", self.port),
        }
    }

    /// The host name a password file line is matched against.
    fn pgpass_host(&self, default_socket_dir: &Path) -> String {
        match &self.addr {
            Addr::Unix(dir) if dir == default_socket_dir => "localhost".into(),
            Addr::Unix(dir) => dir.display().to_string(),
            Addr::Tcp { host, .. } => host.clone(),
        }
    }
}

/// Everything needed to connect, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub dbname: String,
    pub password: Option<String>,
    pub passfile: PathBuf,
    pub application_name: String,
    pub options: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub keepalives: bool,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub tcp_user_timeout: Option<Duration>,
    pub target_session_attrs: postgres::config::TargetSessionAttrs,
    pub channel_binding: postgres::config::ChannelBinding,
    pub tls: Tls,
    pub default_socket_dir: PathBuf,
}

impl Settings {
    /// The password for one host: the one given, else the password file's.
    pub fn password_for(&self, e: &Endpoint, pgpass: Option<&str>) -> Option<String> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        pgpass_lookup(
            pgpass?,
            &e.pgpass_host(&self.default_socket_dir),
            &e.port.to_string(),
            &self.dbname,
            &self.user,
        )
    }
}

/// What resolution reads from outside: the environment, the text of a
/// file (None when it cannot be read), the home directory and the OS
/// user name.
pub struct Outside<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read: &'a dyn Fn(&Path) -> Option<String>,
    pub home: Option<PathBuf>,
    pub os_user: Option<String>,
    pub default_socket_dir: PathBuf,
}

/// True when the environment says where to connect, so `--db` may be
/// left out.
pub fn environment_names_a_database(env: &dyn Fn(&str) -> Option<String>) -> bool {
    ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE"]
        .iter()
        .any(|v| env(v).is_some_and(|s| !s.is_empty()))
}

fn duration_secs(keyword: &str, v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("invalid integer value \"{v}\" for connection option \"{keyword}\""))
}

fn bool01(keyword: &str, v: &str) -> Result<bool, String> {
    match v.trim() {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("invalid {keyword} value: \"{v}\"")),
    }
}

/// Resolves a conninfo (or none) with a service file, the environment and
/// the defaults into connection settings.
pub fn resolve(conninfo: Option<&str>, out: &Outside<'_>) -> Result<Settings, String> {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in parse_conninfo(conninfo.unwrap_or(""))? {
        given.insert(k, v);
    }
    let env = |k: &str| (out.env)(k).filter(|v| !v.is_empty());
    let home = out.home.clone();
    let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));

    // A service named in the conninfo, else by PGSERVICE; its values fill
    // in what the conninfo left out.
    let service = given
        .get("service")
        .filter(|s| !s.is_empty())
        .cloned()
        .or_else(|| env("PGSERVICE"));
    if let Some(name) = service {
        let user_file = given
            .get("servicefile")
            .filter(|s| !s.is_empty())
            .cloned()
            .or_else(|| env("PGSERVICEFILE"))
            .map(PathBuf::from)
            .or_else(|| in_home(".pg_service.conf"));
        let sys_file =
            PathBuf::from(env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
                .join("pg_service.conf");
        let mut section = None;
        for file in user_file.into_iter().chain([sys_file]) {
            if let Some(text) = (out.read)(&file) {
                if let Some(s) = service_section(&text, &name, &file)? {
                    section = Some(s);
                    break;
                }
            }
        }
        let section =
            section.ok_or_else(|| format!("definition of service \"{name}\" not found"))?;
        for (k, v) in section {
            given.entry(k).or_insert(v);
        }
    }

    // What is still unset comes from the environment.
    let get = |k: &str| -> Option<String> {
        given
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| env_var(k).and_then(env))
    };

    for (k, allowed) in UNSUPPORTED {
        if let Some(v) = get(k) {
            if !allowed.contains(&v.as_str()) {
                let from = if given.contains_key(*k) {
                    format!("connection option \"{k}\"")
                } else {
                    format!("{} (connection option \"{k}\")", env_var(k).unwrap_or(k))
                };
                let shown = if *k == "sslpassword" {
                    "…".to_string()
                } else {
                    v
                };
                return Err(format!(
                    "{from} = \"{shown}\" is not supported by pgai-migrate-worker"
                ));
            }
        }
    }

    let user = get("user")
        .or_else(|| out.os_user.clone())
        .ok_or("could not determine the user name: set user= or PGUSER")?;
    let dbname = get("dbname").unwrap_or_else(|| user.clone());

    // The host list: host and hostaddr lists of the same length (or one of
    // them), and one port or one per host.
    let split = |v: Option<String>| -> Vec<String> {
        v.map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let hosts = split(get("host"));
    let hostaddrs = split(get("hostaddr"));
    let ports = split(get("port"));
    let n = hosts.len().max(hostaddrs.len()).max(1);
    if (!hosts.is_empty() && hosts.len() != n) || (!hostaddrs.is_empty() && hostaddrs.len() != n) {
        return Err(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            hostaddrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != n {
        return Err(format!(
            "could not match {} port numbers to {n} hosts",
            ports.len()
        ));
    }
    let mut endpoints = Vec::new();
    for i in 0..n {
        let host = hosts.get(i).filter(|h| !h.is_empty()).cloned();
        let hostaddr = match hostaddrs.get(i).filter(|h| !h.is_empty()) {
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| format!("could not parse network address \"{a}\""))?,
            ),
            None => None,
        };
        let port = match ports.get(if ports.len() == 1 { 0 } else { i }) {
            Some(p) if !p.is_empty() => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid port number: \"{p}\""))?,
            _ => 5432,
        };
        let addr = match (host, hostaddr) {
            (Some(h), _) if h.starts_with('/') => Addr::Unix(PathBuf::from(h)),
            (Some(h), a) => Addr::Tcp {
                host: h,
                hostaddr: a,
            },
            (None, Some(a)) => Addr::Tcp {
                host: a.to_string(),
                hostaddr: Some(a),
            },
            (None, None) => Addr::Unix(out.default_socket_dir.clone()),
        };
        endpoints.push(Endpoint { addr, port });
    }

    let mode_given = get("sslmode");
    let root = match get("sslrootcert") {
        Some(s) if s == "system" => RootCert::System,
        Some(s) => RootCert::File {
            path: PathBuf::from(s),
            explicit: true,
        },
        None => RootCert::File {
            path: in_home(".postgresql/root.crt").unwrap_or_default(),
            explicit: false,
        },
    };
    let mode = match (&mode_given, &root) {
        (Some(m), _) => SslMode::parse(m)?,
        // libpq: the system store makes verify-full the default.
        (None, RootCert::System) => SslMode::VerifyFull,
        (None, _) => SslMode::Prefer,
    };
    if root == RootCert::System && mode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            mode.name()
        ));
    }
    let direct = match get("sslnegotiation").as_deref() {
        None | Some("postgres") => false,
        Some("direct") => true,
        Some(v) => return Err(format!("invalid sslnegotiation value: \"{v}\"")),
    };
    if direct && matches!(mode, SslMode::Disable | SslMode::Allow | SslMode::Prefer) {
        return Err(format!(
            "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")",
            mode.name()
        ));
    }
    let tls = Tls {
        mode,
        direct,
        root,
        cert: get("sslcert")
            .map(PathBuf::from)
            .or_else(|| in_home(".postgresql/postgresql.crt"))
            .unwrap_or_default(),
        key: get("sslkey")
            .map(PathBuf::from)
            .or_else(|| in_home(".postgresql/postgresql.key"))
            .unwrap_or_default(),
        sni: get("sslsni").map_or(Ok(true), |v| bool01("sslsni", &v))?,
        min_version: TlsVersion::parse(
            "ssl_min_protocol_version",
            &get("ssl_min_protocol_version").unwrap_or_default(),
        )?
        .unwrap_or(TlsVersion::Tls12),
        max_version: TlsVersion::parse(
            "ssl_max_protocol_version",
            &get("ssl_max_protocol_version").unwrap_or_default(),
        )?,
    };
    if tls.max_version == Some(TlsVersion::Tls12) && tls.min_version == TlsVersion::Tls13 {
        return Err("invalid SSL protocol version range".into());
    }

    use postgres::config::{ChannelBinding, TargetSessionAttrs};
    let target_session_attrs = match get("target_session_attrs").as_deref() {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some("read-only") => TargetSessionAttrs::ReadOnly,
        Some(v) => {
            return Err(format!(
                "invalid target_session_attrs value: \"{v}\" (pgai-migrate-worker supports any, read-write, read-only)"
            ))
        }
    };
    let channel_binding = match get("channel_binding").as_deref() {
        None | Some("prefer") => ChannelBinding::Prefer,
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        Some(v) => return Err(format!("invalid channel_binding value: \"{v}\"")),
    };
    let secs = |k: &str| get(k).map(|v| duration_secs(k, &v)).transpose();
    // libpq treats a connect_timeout of 0 as none and below 2 s as 2 s.
    let connect_timeout = secs("connect_timeout")?
        .filter(|d| !d.is_zero())
        .map(|d| d.max(Duration::from_secs(2)));
    let keepalives_count = match get("keepalives_count") {
        Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
            format!("invalid integer value \"{v}\" for connection option \"keepalives_count\"")
        })?),
        None => None,
    };
    let tcp_user_timeout = match get("tcp_user_timeout") {
        Some(v) => Some(Duration::from_millis(v.trim().parse::<u64>().map_err(
            |_| format!("invalid integer value \"{v}\" for connection option \"tcp_user_timeout\""),
        )?)),
        None => None,
    };

    Ok(Settings {
        endpoints,
        user,
        dbname,
        password: get("password"),
        passfile: get("passfile")
            .map(PathBuf::from)
            .or_else(|| in_home(".pgpass"))
            .unwrap_or_default(),
        application_name: get("application_name")
            .or_else(|| get("fallback_application_name"))
            .unwrap_or_else(|| "pgai-migrate-worker".into()),
        options: get("options"),
        connect_timeout,
        keepalives: get("keepalives").map_or(Ok(true), |v| bool01("keepalives", &v))?,
        keepalives_idle: secs("keepalives_idle")?,
        keepalives_interval: secs("keepalives_interval")?,
        keepalives_count,
        tcp_user_timeout,
        target_session_attrs,
        channel_binding,
        tls,
        default_socket_dir: out.default_socket_dir.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    struct World {
        env: HashMap<String, String>,
        files: HashMap<PathBuf, String>,
    }

    impl World {
        fn new(env: &[(&str, &str)]) -> Self {
            World {
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                files: HashMap::new(),
            }
        }
        fn file(mut self, p: &str, text: &str) -> Self {
            self.files.insert(PathBuf::from(p), text.into());
            self
        }
        fn resolve(&self, conninfo: Option<&str>) -> Result<Settings, String> {
            let env = |k: &str| self.env.get(k).cloned();
            let read = |p: &Path| self.files.get(p).cloned();
            resolve(
                conninfo,
                &Outside {
                    env: &env,
                    read: &read,
                    home: Some(PathBuf::from("/home/w")),
                    os_user: Some("osuser".into()),
                    default_socket_dir: PathBuf::from("/tmp"),
                },
            )
        }
    }

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint {
            addr: Addr::Tcp {
                host: host.into(),
                hostaddr: None,
            },
            port,
        }
    }

    #[test]
    fn conninfo_strings_are_split_with_quotes_and_escapes() {
        assert_eq!(
            parse_conninfo("host=db  port = 5433 password='a b\\'c\\\\' user=x\\ y").unwrap(),
            kv(&[
                ("host", "db"),
                ("port", "5433"),
                ("password", "a b'c\\"),
                ("user", "x y")
            ])
        );
        assert_eq!(parse_conninfo("dbname=''").unwrap(), kv(&[("dbname", "")]));
        assert!(parse_conninfo("host")
            .unwrap_err()
            .contains("missing \"=\""));
        assert!(parse_conninfo("password='abc")
            .unwrap_err()
            .contains("unterminated"));
        assert_eq!(
            parse_conninfo("hots=db").unwrap_err(),
            "invalid connection option \"hots\""
        );
    }

    #[test]
    fn uris_give_the_same_keywords() {
        assert_eq!(
            parse_conninfo("postgresql://wo%40rker:p%3Ass@db.example:6432/app?sslmode=verify-full&application_name=x").unwrap(),
            kv(&[
                ("user", "wo@rker"),
                ("password", "p:ss"),
                ("host", "db.example"),
                ("port", "6432"),
                ("dbname", "app"),
                ("sslmode", "verify-full"),
                ("application_name", "x"),
            ])
        );
        assert_eq!(
            parse_conninfo("postgres://[::1]:5433,h2/db").unwrap(),
            kv(&[("host", "::1,h2"), ("port", "5433,"), ("dbname", "db")])
        );
        assert_eq!(
            parse_conninfo("postgresql://%2Ftmp%2Fpg/app?ssl=true").unwrap(),
            kv(&[
                ("host", "/tmp/pg"),
                ("dbname", "app"),
                ("sslmode", "require")
            ])
        );
        assert_eq!(parse_conninfo("postgresql://").unwrap(), kv(&[]));
        assert!(parse_conninfo("postgresql://h/db?nope=1").is_err());
    }

    #[test]
    fn the_conninfo_wins_over_the_service_and_the_service_over_the_environment() {
        let w = World::new(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
            ("PGSSLMODE", "require"),
        ])
        .file(
            "/home/w/.pg_service.conf",
            "# mine\n[other]\nhost=nope\n[prod]\nhost = svchost\ndbname=svcdb\n",
        );
        let s = w.resolve(Some("service=prod port=6000")).unwrap();
        assert_eq!(s.endpoints, vec![tcp("svchost", 6000)]);
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("envuser", "svcdb"));
        assert_eq!(s.tls.mode, SslMode::Require);
        assert_eq!(s.application_name, "pgai-migrate-worker");
    }

    #[test]
    fn service_files_are_found_by_pgservice_pgservicefile_and_pgsysconfdir() {
        let w = World::new(&[("PGSERVICE", "a"), ("PGSERVICEFILE", "/etc/x.conf")])
            .file("/etc/x.conf", "[a]\nhost=fromx\n");
        assert_eq!(w.resolve(None).unwrap().endpoints, vec![tcp("fromx", 5432)]);
        let w = World::new(&[("PGSYSCONFDIR", "/sys/pg")])
            .file("/home/w/.pg_service.conf", "[b]\nhost=home\n")
            .file("/sys/pg/pg_service.conf", "[a]\nhost=sys\n");
        assert_eq!(
            w.resolve(Some("service=a")).unwrap().endpoints,
            vec![tcp("sys", 5432)]
        );
        assert_eq!(
            w.resolve(Some("service=c")).unwrap_err(),
            "definition of service \"c\" not found"
        );
        let w = World::new(&[]).file("/home/w/.pg_service.conf", "[a]\nservice=b\n");
        assert!(w.resolve(Some("service=a")).unwrap_err().contains("nested"));
        let w = World::new(&[]).file("/home/w/.pg_service.conf", "[a]\nhost\n");
        assert!(w
            .resolve(Some("service=a"))
            .unwrap_err()
            .contains("syntax error in service file \"/home/w/.pg_service.conf\", line 2"));
    }

    #[test]
    fn defaults_are_libpqs() {
        let s = World::new(&[]).resolve(None).unwrap();
        assert_eq!(
            s.endpoints,
            vec![Endpoint {
                addr: Addr::Unix("/tmp".into()),
                port: 5432
            }]
        );
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("osuser", "osuser"));
        assert_eq!(s.tls.mode, SslMode::Prefer);
        assert_eq!(
            s.tls.root,
            RootCert::File {
                path: "/home/w/.postgresql/root.crt".into(),
                explicit: false
            }
        );
        assert_eq!(
            s.tls.cert,
            PathBuf::from("/home/w/.postgresql/postgresql.crt")
        );
        assert_eq!(s.passfile, PathBuf::from("/home/w/.pgpass"));
        assert_eq!(s.connect_timeout, None);
        let s = World::new(&[("PGAPPNAME", "mine"), ("PGCONNECT_TIMEOUT", "1")])
            .resolve(None)
            .unwrap();
        assert_eq!(s.application_name, "mine");
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn sslmodes_and_their_combinations() {
        let w = World::new(&[]);
        for m in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let s = w.resolve(Some(&format!("sslmode={m}"))).unwrap();
            assert_eq!(s.tls.mode.name(), m);
        }
        assert_eq!(
            w.resolve(Some("sslmode=verify")).unwrap_err(),
            "invalid sslmode value: \"verify\""
        );
        let s = w.resolve(Some("sslrootcert=system")).unwrap();
        assert_eq!(
            (s.tls.mode, &s.tls.root),
            (SslMode::VerifyFull, &RootCert::System)
        );
        assert!(w
            .resolve(Some("sslrootcert=system sslmode=verify-ca"))
            .unwrap_err()
            .contains("weak sslmode \"verify-ca\""));
        assert!(w
            .resolve(Some("sslmode=prefer sslnegotiation=direct"))
            .unwrap_err()
            .contains("sslnegotiation=direct"));
        assert!(
            w.resolve(Some("sslmode=require sslnegotiation=direct"))
                .unwrap()
                .tls
                .direct
        );
        assert_eq!(
            w.resolve(Some("sslrootcert=/ca.pem")).unwrap().tls.root,
            RootCert::File {
                path: "/ca.pem".into(),
                explicit: true
            }
        );
    }

    #[test]
    fn options_that_would_be_ignored_are_refused() {
        let w = World::new(&[("PGSSLCRL", "/crl.pem")]);
        assert_eq!(
            w.resolve(None).unwrap_err(),
            "PGSSLCRL (connection option \"sslcrl\") = \"/crl.pem\" is not supported by pgai-migrate-worker"
        );
        let w = World::new(&[]);
        assert!(w.resolve(Some("gssencmode=require")).is_err());
        assert!(w.resolve(Some("gssencmode=prefer")).is_ok());
        let e = w.resolve(Some("sslpassword=secret")).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn host_lists_pair_with_ports_and_hostaddrs() {
        let w = World::new(&[]);
        let s = w
            .resolve(Some(
                "host=a,/run/pg,c hostaddr=10.0.0.1,,10.0.0.3 port=1,2,3",
            ))
            .unwrap();
        assert_eq!(s.endpoints.len(), 3);
        assert_eq!(
            s.endpoints[0],
            Endpoint {
                addr: Addr::Tcp {
                    host: "a".into(),
                    hostaddr: Some("10.0.0.1".parse().unwrap())
                },
                port: 1
            }
        );
        assert_eq!(s.endpoints[1].addr, Addr::Unix("/run/pg".into()));
        assert!(w.resolve(Some("host=a,b port=1,2,3")).is_err());
        assert!(w.resolve(Some("port=0")).is_err());
        let s = w.resolve(Some("hostaddr=127.0.0.1")).unwrap();
        assert_eq!(
            s.endpoints[0].describe(),
            "server at \"127.0.0.1\", port 5432"
        );
    }

    #[test]
    fn password_files_match_like_libpqs() {
        let text = "# comment\n\
                    db.example:5432:app:worker:first\n\
                    *:*:app:worker:second\n\
                    h\\:x:*:*:*:esc\\:aped\\\\\n\
                    \\*:*:*:star:literal\n\
                    localhost:5432:*:*:sock\n\
                    short:line\n";
        assert_eq!(
            pgpass_lookup(text, "db.example", "5432", "app", "worker").as_deref(),
            Some("first")
        );
        assert_eq!(
            pgpass_lookup(text, "other", "6000", "app", "worker").as_deref(),
            Some("second")
        );
        assert_eq!(
            pgpass_lookup(text, "h:x", "1", "d", "u").as_deref(),
            Some("esc:aped\\")
        );
        assert_eq!(pgpass_lookup(text, "anyhost", "1", "d", "star"), None);
        assert_eq!(
            pgpass_lookup(text, "*", "1", "d", "star").as_deref(),
            Some("literal")
        );
        assert_eq!(pgpass_lookup(text, "nowhere", "1", "d", "u"), None);
        // a password may contain colons once the four fields are read
        assert_eq!(
            pgpass_lookup("*:*:*:*:a:b", "h", "1", "d", "u").as_deref(),
            Some("a:b")
        );
    }

    #[test]
    fn a_socket_in_the_default_directory_is_localhost_in_the_password_file() {
        let w = World::new(&[]);
        let s = w.resolve(Some("user=u dbname=d")).unwrap();
        let pgpass = "localhost:5432:d:u:pw\n";
        assert_eq!(
            s.password_for(&s.endpoints[0], Some(pgpass)).as_deref(),
            Some("pw")
        );
        let s = w.resolve(Some("host=/elsewhere user=u dbname=d")).unwrap();
        assert_eq!(s.password_for(&s.endpoints[0], Some(pgpass)), None);
        let s = w
            .resolve(Some("host=localhost user=u dbname=d password=given"))
            .unwrap();
        assert_eq!(
            s.password_for(&s.endpoints[0], Some(pgpass)).as_deref(),
            Some("given")
        );
    }

    #[test]
    fn the_environment_alone_may_name_the_database() {
        let env = |k: &str| (k == "PGSERVICE").then(|| "prod".to_string());
        assert!(environment_names_a_database(&env));
        let env = |k: &str| (k == "PGUSER").then(|| "w".to_string());
        assert!(!environment_names_a_database(&env));
    }
}
