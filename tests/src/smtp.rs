//! A local SMTP receiver for the tests of the e-mail channel: it speaks enough of RFC 5321
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for a real client to hand it mail, and keeps
//! what it received.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One mail as the receiver got it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers, a blank line, the body), dot-unstuffed.
    pub data: String,
}

/// The receiver, listening on a random local port until dropped with the test's runtime.
pub struct SmtpReceiver {
    /// `smtp://127.0.0.1:<port>` (no TLS), as `serve --smtp-url` takes it.
    pub url: String,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let url = format!("smtp://{}", listener.local_addr().expect("an address"));
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, kept.clone()));
            }
        });
        SmtpReceiver { url, mails }
    }

    /// What arrived so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("the mails").clone()
    }
}

async fn session(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test-receiver ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or(&line).to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-test-receiver\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" => {
                mail = Mail {
                    from: address(&line),
                    ..Mail::default()
                };
                b"250 OK\r\n"
            }
            "RCPT" => {
                mail.to.push(address(&line));
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push('\n');
                }
                mail.data = data;
                let n = {
                    let mut kept = mails.lock().expect("the mails");
                    kept.push(std::mem::take(&mut mail));
                    kept.len()
                };
                write
                    .write_all(format!("250 OK queued as test-{n}\r\n").as_bytes())
                    .await?;
                continue;
            }
            "RSET" => {
                mail = Mail::default();
                b"250 OK\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
    Ok(())
}

/// The address between `<` and `>` of a MAIL or RCPT line.
fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or_default().to_owned()
}
