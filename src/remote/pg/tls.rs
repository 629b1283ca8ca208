//! TLS to the remote record, with libpq's `sslmode` rules, over rustls (the TLS mlrun already
//! builds for HTTP; no OpenSSL).
//!
//! tokio-postgres knows only `disable`/`prefer`/`require` and no `sslrootcert`, so both are taken
//! out of the URL (`config::split_tls`; else `PGSSLMODE` / `PGSSLROOTCERT`) before it parses the
//! rest. `prefer` and `require` encrypt without checking the certificate, as libpq does (unless
//! `require` is given a root file); `verify-ca` checks it against the roots (`sslrootcert`, else
//! the system's), `verify-full` also checks the host name.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::config::SslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};

const MODES: &str = "disable, prefer, require, verify-ca, verify-full";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS may be skipped.
    pub fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// The TLS settings of one remote URL.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// `sslrootcert`: a PEM file of roots; `None` (or `system`): the system's roots
    root: Option<PathBuf>,
}

/// Takes `sslmode` / `sslrootcert` out of the record URL `db`, falling back on `PGSSLMODE` /
/// `PGSSLROOTCERT`. Returns what is left for tokio-postgres to parse.
pub fn split(db: &str, shown: &str) -> Result<(String, Settings)> {
    let (rest, mode, root) = crate::config::split_tls(db);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (mode_text, from) = match mode {
        Some(m) => (m, ""),
        None => match env("PGSSLMODE") {
            Some(m) => (m, " (from PGSSLMODE)"),
            None => ("prefer".to_string(), ""),
        },
    };
    let Some(mode) = Mode::parse(&mode_text) else {
        return Err(Error::invalid(format!(
            "the remote record {shown}: unknown sslmode `{mode_text}`{from}; allowed: {MODES}"
        )));
    };
    let root = root
        .or_else(|| env("PGSSLROOTCERT"))
        .filter(|r| r != "system")
        .map(PathBuf::from);
    Ok((rest, Settings { mode, root }))
}

impl Settings {
    /// The connector for these settings; with `verify-*`, the roots are read now.
    pub fn connector(&self, shown: &str) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::other(format!("TLS for {shown}: {e}")))?;
        // as libpq: `require` with a root file given checks the chain, as `verify-ca` does
        let checked = match self.mode {
            Mode::Disable | Mode::Prefer => false,
            Mode::Require => self.root.is_some(),
            Mode::VerifyCa | Mode::VerifyFull => true,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match checked {
            false => Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }),
            true => {
                let roots = self.roots(shown)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| Error::other(format!("TLS for {shown}: {e}")))?;
                if self.mode == Mode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector(Arc::new(config)))
    }

    fn roots(&self, shown: &str) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        let mode = self.mode.name();
        match &self.root {
            Some(path) => {
                let unreadable = |e: &dyn std::fmt::Display| {
                    Error::invalid(format!(
                        "the remote record {shown} (sslmode={mode}): cannot read sslrootcert `{}`: {e}",
                        path.display()
                    ))
                };
                let certs = CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))?;
                for cert in certs {
                    let cert = cert.map_err(|e| unreadable(&e))?;
                    roots.add(cert).map_err(|e| unreadable(&e))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            let whence = match &self.root {
                Some(p) => format!("sslrootcert `{}` holds no certificate", p.display()),
                None => "this system has no root certificates".to_string(),
            };
            return Err(Error::invalid(format!(
                "the remote record {shown} (sslmode={mode}): {whence}; give the CA's PEM file as sslrootcert=PATH in the URL or PGSSLROOTCERT"
            )));
        }
        Ok(roots)
    }

    /// A TLS failure worded as what to fix, or `None` for an error that is not about TLS.
    pub fn explain(&self, shown: &str, e: &postgres::Error) -> Option<Error> {
        let mode = self.mode.name();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let inner = s
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .map_or(s, |i| i as &(dyn std::error::Error + 'static));
            if let Some(rustls::Error::InvalidCertificate(c)) = inner.downcast_ref() {
                return Some(certificate_error(shown, mode, c));
            }
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(Error::store(format!(
                    "the remote record {shown}: TLS handshake failed (sslmode={mode}): {r}"
                )));
            }
            if s.to_string() == "server does not support TLS" {
                return Some(Error::store(format!(
                    "the remote record {shown} does not accept TLS (sslmode={mode}): turn on `ssl` on the server, or use sslmode=prefer or disable only on a trusted network"
                )));
            }
            source = s.source();
        }
        None
    }
}

fn certificate_error(shown: &str, mode: &str, c: &CertificateError) -> Error {
    let fix = match c {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is not for this host name: connect by a name the certificate lists, or use sslmode=verify-ca"
        }
        CertificateError::UnknownIssuer => {
            "the server's certificate is not signed by a trusted CA: give the CA's PEM file as sslrootcert=PATH in the URL or PGSSLROOTCERT"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired: renew it on the server"
        }
        _ => "the server's certificate does not verify",
    };
    Error::store(format!(
        "the remote record {shown} (sslmode={mode}): {fix} ({c:?})"
    ))
}

/// `prefer` / `require`: encrypted, the certificate not checked (libpq's meaning); the
/// handshake's signatures are still verified.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain checked against the roots, any host name accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the chain verified
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS hook, made from a rustls client configuration.
#[derive(Clone)]
pub struct Connector(Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> std::result::Result<Connect, Self::Error> {
        Ok(Connect {
            config: self.0.clone(),
            name: ServerName::try_from(host.to_string())?,
        })
    }
}

pub struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { Ok(Stream(connector.connect(self.name, stream).await?)) })
    }
}

pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// No channel binding: SCRAM then authenticates without it, as it does over plain TCP.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::split_tls;

    #[test]
    fn the_url_loses_only_the_tls_keys() {
        let (rest, m, r) = split_tls(
            "postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(m.as_deref(), Some("verify-full"));
        assert_eq!(r.as_deref(), Some("/tmp/ca.pem"));
        let (rest, m, _) = split_tls("postgres://u@h/db?sslmode=require");
        assert_eq!(
            (rest.as_str(), m.as_deref()),
            ("postgres://u@h/db", Some("require"))
        );
        assert_eq!(split_tls("postgres://u@h/db").0, "postgres://u@h/db");
    }
}
