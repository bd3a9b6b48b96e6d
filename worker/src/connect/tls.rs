//! The rustls client configuration for one sslmode, with libpq's meanings:
//! no verification (`require`, `prefer`, `allow` without a root
//! certificate), the chain only (`verify-ca`, or any of those with one),
//! the chain and the host name (`verify-full`).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::params::{RootCert, SslMode, Tls, TlsVersion};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any certificate, as libpq's `require` without a root
/// certificate does; the handshake's signatures are still checked, so the
/// session is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain to a trusted root, validity dates included, but not the
/// name (`verify-ca`). webpki checks the name last, so a name mismatch
/// means everything else passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn roots(root: &RootCert) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslrootcert=system: no certificates found in the system's trust store".into(),
                );
            }
        }
        RootCert::File { path, .. } => {
            let certs = read_certs(path, "root certificate")?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "could not read root certificate file \"{}\": no usable certificate in it",
                    path.display()
                ));
            }
        }
    }
    Ok(store)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("could not read {what} file \"{}\": {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "could not read {what} file \"{}\": no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// libpq refuses a private key others may read.
fn check_key_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(|e| {
        format!(
            "could not open private key file \"{}\": {e}",
            path.display()
        )
    })?;
    if !m.is_file() {
        return Err(format!(
            "private key file \"{}\" is not a regular file",
            path.display()
        ));
    }
    let mode = m.mode() & 0o777;
    let ok = if m.uid() == 0 {
        mode & 0o137 == 0
    } else {
        mode & 0o077 == 0
    };
    if !ok {
        return Err(format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            path.display()
        ));
    }
    Ok(())
}

/// What to do for a TLS attempt: the check, and whether a root
/// certificate is needed but missing.
pub fn check_for(tls: &Tls, root_exists: bool) -> Result<Check, String> {
    let have_root = matches!(tls.root, RootCert::System) || root_exists;
    match tls.mode {
        SslMode::VerifyFull | SslMode::VerifyCa if !have_root => {
            let path = match &tls.root {
                RootCert::File { path, .. } => path.display().to_string(),
                RootCert::System => unreachable!(),
            };
            Err(format!(
                "root certificate file \"{path}\" does not exist; either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification"
            ))
        }
        SslMode::VerifyFull => Ok(Check::ChainAndName),
        // libpq verifies the chain whenever it finds a root certificate.
        _ if have_root => Ok(Check::Chain),
        _ => Ok(Check::Nothing),
    }
}

/// The client configuration for `tls`, read from its files now.
pub fn client_config(tls: &Tls) -> Result<ClientConfig, String> {
    let root_exists = match &tls.root {
        RootCert::File { path, .. } => path.is_file(),
        RootCert::System => true,
    };
    let check = check_for(tls, root_exists)?;
    let provider = provider();
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if tls.min_version == TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if tls.max_version != Some(TlsVersion::Tls12) {
        versions.push(&rustls::version::TLS13);
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone()))),
        Check::Chain | Check::ChainAndName => {
            let verifier = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(&tls.root)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("TLS setup: {e}"))?;
            if check == Check::Chain {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
            } else {
                builder.with_webpki_verifier(verifier)
            }
        }
    };
    // A client certificate is sent when its file exists (libpq's rule);
    // its key must then exist and be private.
    let mut config = if tls.cert.is_file() {
        let chain = read_certs(&tls.cert, "certificate")?;
        if !tls.key.exists() {
            return Err(format!(
                "certificate present, but not private key file \"{}\"",
                tls.key.display()
            ));
        }
        check_key_permissions(&tls.key)?;
        let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
            format!(
                "could not load private key file \"{}\": {e}",
                tls.key.display()
            )
        })?;
        builder.with_client_auth_cert(chain, key).map_err(|e| {
            format!(
                "could not use client certificate \"{}\": {e}",
                tls.cert.display()
            )
        })?
    } else {
        builder.with_no_client_auth()
    };
    // PostgreSQL 17 and later require this ALPN for direct TLS; older
    // servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    config.enable_sni = tls.sni;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tls(mode: SslMode, root: RootCert) -> Tls {
        Tls {
            mode,
            direct: false,
            root,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            sni: true,
            min_version: TlsVersion::Tls12,
            max_version: None,
        }
    }

    #[test]
    fn each_sslmode_checks_what_libpq_checks() {
        let default_root = RootCert::File {
            path: "/home/w/.postgresql/root.crt".into(),
            explicit: false,
        };
        let given_root = RootCert::File {
            path: "/ca.pem".into(),
            explicit: true,
        };
        use Check::*;
        use SslMode::*;
        for (mode, root, exists, want) in [
            (Require, &default_root, false, Ok(Nothing)),
            (Prefer, &default_root, false, Ok(Nothing)),
            (Allow, &default_root, false, Ok(Nothing)),
            (Require, &given_root, true, Ok(Chain)),
            (Require, &default_root, true, Ok(Chain)),
            // a given file that is missing: require does not verify
            (Require, &given_root, false, Ok(Nothing)),
            (VerifyCa, &given_root, true, Ok(Chain)),
            (VerifyFull, &given_root, true, Ok(ChainAndName)),
            (VerifyFull, &RootCert::System, true, Ok(ChainAndName)),
            (VerifyCa, &given_root, false, Err(())),
            (VerifyFull, &default_root, false, Err(())),
        ] {
            let got = check_for(&tls(mode, root.clone()), exists).map_err(|_| ());
            assert_eq!(got, want, "{mode:?} {root:?} exists={exists}");
        }
        let e = check_for(&tls(VerifyFull, given_root), false).unwrap_err();
        assert!(
            e.starts_with("root certificate file \"/ca.pem\" does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_readable_private_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgai-migrate-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let owned_by_root = std::fs::metadata(&key).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
        assert!(check_key_permissions(&key)
            .unwrap_err()
            .contains("group or world access"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_permissions(&key).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check_key_permissions(&key).is_ok(), owned_by_root.unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
