//! A Redis server's address and a small blocking RESP client: the commands drkit sends
//! (AUTH, INFO, SYNC, SELECT, RESTORE, DBSIZE) and the replies it reads.

use std::fmt;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::{err, Error, Result};

/// `redis://[user[:password]@]host[:port][/db]`; the password may also come from
/// `REDISCLI_AUTH`, as for `redis-cli`. Shown without its password.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct RedisUrl {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Zeroizing<String>>,
}

impl TryFrom<String> for RedisUrl {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl schemars::JsonSchema for RedisUrl {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RedisUrl".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "x-type": "redis://…",
            "description": "A Redis server: redis://user:password@host:port (a password belongs in a secret variable, or REDISCLI_AUTH)"
        })
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(u) => write!(f, "redis://{u}@{}:{}", self.host, self.port),
            None => write!(f, "redis://{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl RedisUrl {
    /// Parses a `redis://` URL.
    pub fn parse(input: &str) -> Result<Self> {
        let shown = crate::runbook::redact::strip_url_passwords(input);
        let url = url::Url::parse(input).map_err(|e| {
            err!(
                InvalidInput,
                "{shown:?} is not a Redis URL ({e}); give redis://[user:password@]host[:port]"
            )
        })?;
        match url.scheme() {
            "redis" => {}
            "rediss" => {
                return Err(err!(
                    Unsupported,
                    "{shown}: TLS to Redis (rediss://) is not supported yet; reach the server through a TLS tunnel (stunnel, a sidecar) as redis://"
                ))
            }
            other => {
                return Err(err!(
                    InvalidInput,
                    "{shown:?} is a {other}:// URL, not redis://host:port"
                ))
            }
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err!(InvalidInput, "{shown:?} names no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
        let password = url
            .password()
            .map(decode)
            .or_else(|| {
                std::env::var("REDISCLI_AUTH")
                    .ok()
                    .filter(|p| !p.is_empty())
            })
            .map(Zeroizing::new);
        if url
            .path()
            .trim_matches('/')
            .parse::<u32>()
            .is_ok_and(|db| db != 0)
        {
            return Err(err!(
                InvalidInput,
                "{shown}: a backup holds every database of the server; drop the /{} from the URL",
                url.path().trim_matches('/')
            ));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(6379),
            user,
            password,
        })
    }

    /// The password, for the redactor.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref().map(String::as_str)
    }

    /// Connects and authenticates.
    pub(crate) fn connect(&self, timeout: Duration) -> Result<Client> {
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| err!(Unavailable, "{self}: cannot resolve {}: {e}", self.host))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    s.set_read_timeout(Some(timeout)).ok();
                    s.set_write_timeout(Some(timeout)).ok();
                    let mut c = Client {
                        read: BufReader::with_capacity(
                            1 << 20,
                            s.try_clone().map_err(|e| Error::io(self, e))?,
                        ),
                        write: BufWriter::with_capacity(1 << 20, s),
                        shown: self.to_string(),
                    };
                    if let Some(p) = self.password() {
                        let mut args: Vec<&[u8]> = vec![b"AUTH"];
                        if let Some(u) = &self.user {
                            args.push(u.as_bytes());
                        }
                        args.push(p.as_bytes());
                        c.send(&args)?;
                        c.flush()?;
                        if let Reply::Error(e) = c.reply()? {
                            return Err(err!(
                                PermissionDenied,
                                "{self} refused the password: {e}; check the URL's user and password (or REDISCLI_AUTH)"
                            ));
                        }
                    }
                    return Ok(c);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no address"));
        Err(err!(
            Unavailable,
            "cannot connect to {self}: {e}; check the host and port, and that the server is running"
        ))
    }
}

/// A reply.
#[derive(Debug)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) => String::new(),
            Reply::Array(v) => v.iter().map(Reply::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// A connection.
pub(crate) struct Client {
    pub read: BufReader<TcpStream>,
    write: BufWriter<TcpStream>,
    pub shown: String,
}

impl Client {
    fn io(&self, e: io::Error) -> Error {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            return err!(Timeout, "{} did not answer in time", self.shown);
        }
        Error::io(&self.shown, e)
    }

    /// Queues one command.
    pub fn send(&mut self, args: &[&[u8]]) -> Result<()> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        let _ = write!(out, "*{}\r\n", args.len());
        for a in args {
            let _ = write!(out, "${}\r\n", a.len());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.write.write_all(&out).map_err(|e| self.io(e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.write.flush().map_err(|e| self.io(e))
    }

    /// One command, its reply; an error reply is an error naming the command.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        self.send(args)?;
        self.flush()?;
        match self.reply()? {
            Reply::Error(e) if e.starts_with("NOAUTH") => Err(err!(
                PermissionDenied,
                "{} needs a password: give it in the URL (redis://:PASSWORD@host:port) or in REDISCLI_AUTH",
                self.shown
            )),
            Reply::Error(e) => Err(err!(
                External,
                "{} refused {}: {e}",
                self.shown,
                String::from_utf8_lossy(args[0])
            )),
            r => Ok(r),
        }
    }

    pub fn line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        self.read
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io(e))?;
        if !line.ends_with(b"\r\n") {
            return Err(err!(
                Unavailable,
                "{} closed the connection (is a Redis server listening there?)",
                self.shown
            ));
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub fn reply(&mut self) -> Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let num = |s: &str| -> Result<i64> {
            s.parse()
                .map_err(|_| err!(Corrupt, "{} sent a malformed reply: {line:?}", self.shown))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(num(rest)?),
            "$" => {
                let n = num(rest)?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut v = vec![0u8; usize::try_from(n).unwrap_or(0) + 2];
                    self.read.read_exact(&mut v).map_err(|e| self.io(e))?;
                    v.truncate(v.len() - 2);
                    Reply::Bulk(Some(v))
                }
            }
            "*" => {
                let n = num(rest)?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(self.reply()?);
                }
                Reply::Array(items)
            }
            _ => {
                return Err(err!(
                    Corrupt,
                    "{} does not speak the Redis protocol (it sent {:?})",
                    self.shown,
                    line.chars().take(40).collect::<String>()
                ))
            }
        })
    }

    /// `INFO section` as key/value pairs.
    pub fn info(&mut self, section: &str) -> Result<Vec<(String, String)>> {
        let text = self.call(&[b"INFO", section.as_bytes()])?.text();
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// Keys per database, from `INFO keyspace`.
    pub fn keyspace(&mut self) -> Result<std::collections::BTreeMap<u64, u64>> {
        Ok(self
            .info("keyspace")?
            .into_iter()
            .filter_map(|(k, v)| {
                let db = k.strip_prefix("db")?.parse().ok()?;
                let keys = v
                    .split(',')
                    .find_map(|p| p.strip_prefix("keys="))?
                    .parse()
                    .ok()?;
                Some((db, keys))
            })
            .collect())
    }

    /// Reads from the raw stream (after SYNC).
    pub fn raw(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.read
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}
