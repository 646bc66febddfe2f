//! Email notifications: one plain-text message per delivery over SMTP (lettre, rustls),
//! STARTTLS required by default; `none` (plain SMTP) is for a relay on the same machine.
//! The server's certificate is checked against the public (Mozilla) roots, or, when the
//! target has its own CA certificates (`tls_ca_pem`), against those only.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::models::notification::{Delivery, SmtpTls, Target};

/// The message's text: its subject, then the event as indented JSON.
pub fn text(d: &Delivery) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(&d.payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| d.payload.clone());
    format!(
        "{}\n\nEvent: {}\nDelivery: {}\n\n{}\n",
        d.subject,
        d.event.key(),
        d.id,
        pretty
    )
}

pub fn send(t: &Target, d: &Delivery, password: Option<&str>) -> Result<(), String> {
    let from: Mailbox = t
        .smtp_from
        .parse()
        .map_err(|e| format!("the sender address {} is not valid: {e}", t.smtp_from))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(format!("[hostca] {}", d.subject))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str("X-Hostca-Delivery"),
            d.id.to_string(),
        ));
    for to in t
        .destination
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("the recipient {to} is not valid: {e}"))?;
        builder = builder.to(to);
    }
    let message = builder
        .body(text(d))
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let host = t.smtp_host.as_str();
    let tls = match t.smtp_tls {
        SmtpTls::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(host.to_string());
            if !t.tls_ca_pem.is_empty() {
                let ca = Certificate::from_pem(t.tls_ca_pem.as_bytes())
                    .map_err(|e| format!("the target's CA certificates cannot be read: {e}"))?;
                params = params
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(ca);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("cannot prepare TLS for {host}: {e}"))?;
            if mode == SmtpTls::Required {
                Tls::Required(params)
            } else {
                Tls::Opportunistic(params)
            }
        }
    };
    let mut transport = SmtpTransport::builder_dangerous(host)
        .port(t.smtp_port as u16)
        .tls(tls)
        .timeout(Some(super::notifications::WEBHOOK_TIMEOUT));
    if !t.smtp_username.is_empty() {
        transport = transport.credentials(Credentials::new(
            t.smtp_username.clone(),
            password.unwrap_or_default().to_string(),
        ));
    }
    transport.build().send(&message).map(|_| ()).map_err(|e| {
        format!(
            "the SMTP server {host}:{} refused or failed: {e}",
            t.smtp_port
        )
    })
}
