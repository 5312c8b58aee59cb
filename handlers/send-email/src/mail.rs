//! Sending mail: SES v2 (default) or an SMTP relay with `lettre` (for SES sandbox accounts,
//! which may only mail verified recipients).
//!
//! | variable | meaning |
//! |---|---|
//! | `MAIL_FROM` | sender address (an SES-verified identity) |
//! | `MAIL_TRANSPORT` | `ses` (default) or `smtp` |
//! | `SES_CONFIGURATION_SET` | optional SES configuration set |
//! | `SES_USE_DUALSTACK_ENDPOINT` | `true`: reach SES at its dual-stack name (IPv6 from a VPC without an SES endpoint); only the SES client, so other services keep their VPC endpoints |
//! | `SMTP_HOST`, `SMTP_PORT` | relay, port default 587 |
//! | `SMTP_TLS` | `starttls` (default), `tls` (implicit, port 465) or `none` (local relays only) |
//! | `SMTP_SECRET_ARN` | Secrets Manager secret `{"username": .., "password": ..}` for the relay |

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use stt_common::config::{opt_env, req_env};
use stt_common::error::display_chain;
use stt_common::privacy::{mask_addresses, mask_addresses_except, mask_email};
use stt_common::{Error, Result};

/// A mail to send. `Debug` masks the recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("from", &self.from)
            .field("to", &mask_email(&self.to))
            .field("subject", &self.subject)
            .field("text", &self.text)
            .field("html", &self.html)
            .finish()
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<()>;
}

/// SES v2 `SendEmail`.
pub struct SesMailer {
    pub client: aws_sdk_sesv2::Client,
    pub configuration_set: Option<String>,
}

fn content(s: &str) -> Result<Content> {
    Content::builder()
        .data(s)
        .charset("UTF-8")
        .build()
        .map_err(|e| Error::service("ses:SendEmail", e))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(
                Body::builder()
                    .text(content(&mail.text)?)
                    .html(content(&mail.html)?)
                    .build(),
            )
            .build();
        self.client
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| {
                // SES names refused recipients in its message: masked, the sender kept.
                let mut message = mask_addresses_except(&display_chain(&e), Some(&mail.from));
                if message.contains("not verified") {
                    message.push_str(
                        " (an SES account in the sandbox may only mail verified addresses: \
                         verify the recipient, request production access, or set \
                         MAIL_TRANSPORT=smtp with a relay)",
                    );
                }
                Error::service("ses:SendEmail", message)
            })?;
        Ok(())
    }
}

/// An SMTP relay.
pub struct SmtpMailer {
    pub transport: AsyncSmtpTransport<Tokio1Executor>,
}

/// The address masked whole (it may not parse as one), and anything the parser's message
/// quotes of it.
fn mailbox(addr: &str) -> Result<Mailbox> {
    addr.parse().map_err(|e| {
        Error::service(
            "smtp",
            mask_addresses(&format!("address {:?}: {e}", mask_email(addr))),
        )
    })
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        let msg = lettre::Message::builder()
            .from(mailbox(&mail.from)?)
            .to(mailbox(&mail.to)?)
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| Error::service("smtp", mask_addresses(&e.to_string())))?;
        // A relay's refusal quotes the recipient (`550 5.1.1 <user@...>`): masked.
        self.transport.send(msg).await.map_err(|e| {
            Error::service(
                "smtp",
                mask_addresses_except(&display_chain(&e), Some(&mail.from)),
            )
        })?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct SmtpSecret {
    username: String,
    password: String,
}

/// The SES client's configuration: dual stack for SES alone when asked (the shared
/// configuration stays on the standard names the VPC endpoints serve).
pub fn ses_config(sdk: &aws_config::SdkConfig, dual_stack: bool) -> aws_sdk_sesv2::config::Builder {
    aws_sdk_sesv2::config::Builder::from(sdk).use_dual_stack(dual_stack)
}

/// Builds the configured mailer (cold start).
pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Arc<dyn Mailer>> {
    let transport = opt_env("MAIL_TRANSPORT").unwrap_or_else(|| "ses".into());
    match transport.to_ascii_lowercase().as_str() {
        "ses" => Ok(Arc::new(SesMailer {
            client: aws_sdk_sesv2::Client::from_conf(
                ses_config(
                    sdk,
                    opt_env("SES_USE_DUALSTACK_ENDPOINT").as_deref() == Some("true"),
                )
                .build(),
            ),
            configuration_set: opt_env("SES_CONFIGURATION_SET"),
        })),
        "smtp" => {
            let host = req_env("SMTP_HOST")?;
            let tls = opt_env("SMTP_TLS").unwrap_or_else(|| "starttls".into());
            let smtp_err = |e: lettre::transport::smtp::Error| Error::service("smtp", e);
            let mut builder = match tls.as_str() {
                "starttls" => {
                    AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host).map_err(smtp_err)?
                }
                "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host).map_err(smtp_err)?,
                "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                other => {
                    return Err(Error::Config(format!(
                        "SMTP_TLS {other:?}: expected starttls, tls or none"
                    )))
                }
            };
            if let Some(port) = opt_env("SMTP_PORT") {
                let port = port
                    .parse()
                    .map_err(|_| Error::Config(format!("SMTP_PORT {port:?} is not a port")))?;
                builder = builder.port(port);
            }
            if let Some(arn) = opt_env("SMTP_SECRET_ARN") {
                let s: SmtpSecret = stt_common::db::read_secret_json(sdk, &arn).await?;
                builder = builder.credentials(Credentials::new(s.username, s.password));
            }
            Ok(Arc::new(SmtpMailer {
                transport: builder.build(),
            }))
        }
        other => Err(Error::Config(format!(
            "MAIL_TRANSPORT {other:?}: expected ses or smtp"
        ))),
    }
}
