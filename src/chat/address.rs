//! Addresses a user types: `HOST:PORT` to connect to, a port to listen on.
//!
//! Parsing is strict and its errors say what is wrong, because the prompt
//! shows them to a person who then types the answer again. Name resolution
//! is not done here (it is I/O); a host name is only checked for shape.

use super::ticket::{looks_like_ticket, Ticket, TicketError};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The port used when the user presses Enter at the port prompt.
pub const DEFAULT_PORT: u16 = 8080;

/// Why an address or port was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("no address given: expected HOST:PORT, e.g. 127.0.0.1:8080")]
    Empty,
    /// There is no `:PORT` part.
    #[error("'{0}' has no port: expected HOST:PORT, e.g. 127.0.0.1:8080")]
    MissingPort(String),
    /// The port is not a number from 1 to 65535.
    #[error("invalid port '{0}': expected a number from 1 to 65535")]
    InvalidPort(String),
    /// The host part is not an IP address or a host name.
    #[error("invalid host '{0}': expected an IPv4 address, [IPv6] address or host name")]
    InvalidHost(String),
    /// An invite that cannot be used.
    #[error(transparent)]
    Ticket(#[from] TicketError),
}

/// A host (IP address or name) and a port to connect to.
///
/// ```
/// use rust_p2p_chat::chat::address::PeerAddress;
///
/// let addr: PeerAddress = "localhost:8080".parse()?;
/// assert_eq!((addr.host(), addr.port()), ("localhost", 8080));
/// let v6: PeerAddress = "[::1]:9000".parse()?;
/// assert_eq!(v6.to_string(), "[::1]:9000");
/// assert!("127.0.0.1".parse::<PeerAddress>().is_err());
/// # Ok::<(), rust_p2p_chat::chat::address::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// The host as typed, without IPv6 brackets.
    host: String,
    ip: Option<IpAddr>,
    port: u16,
}

impl PeerAddress {
    /// The host as typed: an IP address (without brackets) or a name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for PeerAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (host, ip, port) = if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::InvalidHost(s.to_owned()))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddressError::MissingPort(s.to_owned()))?;
            let ip: std::net::Ipv6Addr = inside
                .parse()
                .map_err(|_| AddressError::InvalidHost(inside.to_owned()))?;
            (inside.to_owned(), Some(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| AddressError::MissingPort(s.to_owned()))?;
            if host.contains(':') {
                // A bare IPv6 address: the port is ambiguous without brackets.
                return Err(AddressError::InvalidHost(format!(
                    "{host} (write IPv6 addresses as [ADDRESS]:PORT)"
                )));
            }
            (host.to_owned(), parse_host(host)?, port)
        };
        Ok(Self {
            host,
            ip,
            port: parse_connect_port(port)?,
        })
    }
}

/// Where to connect: `HOST:PORT`, or a full multiaddr
/// (`/ip4/1.2.3.4/tcp/9000/p2p/ID`, secure protocol only; checked by the
/// engine that dials it).
///
/// ```
/// use rust_p2p_chat::chat::address::DialTarget;
///
/// assert!(matches!("127.0.0.1:9000".parse(), Ok(DialTarget::Address(_))));
/// assert!(matches!("/ip4/127.0.0.1/tcp/9000".parse(), Ok(DialTarget::Multiaddr(_))));
/// assert!("nonsense".parse::<DialTarget>().is_err());
/// # Ok::<(), rust_p2p_chat::chat::address::AddressError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A host and port.
    Address(PeerAddress),
    /// A multiaddr, as typed.
    Multiaddr(String),
    /// An invite into a private room: its inviter's addresses, tried in
    /// turn.
    Invite(Box<Ticket>),
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::Address(addr) => addr.fmt(f),
            DialTarget::Multiaddr(addr) => f.write_str(addr),
            DialTarget::Invite(ticket) => {
                let mut addrs: Vec<String> = ticket.addrs.iter().map(|a| a.to_string()).collect();
                if !ticket.relayed.is_empty() {
                    addrs.push(format!("{} relay(s)", ticket.relayed.len()));
                }
                write!(f, "{}", addrs.join(" or "))
            }
        }
    }
}

impl FromStr for DialTarget {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if looks_like_ticket(s) {
            return Ticket::decode(s)
                .map(|t| DialTarget::Invite(Box::new(t)))
                .map_err(AddressError::Ticket);
        }
        if s.starts_with('/') {
            if s.len() > 1024 || s.chars().any(char::is_control) {
                return Err(AddressError::InvalidHost(s.chars().take(64).collect()));
            }
            return Ok(DialTarget::Multiaddr(s.to_owned()));
        }
        s.parse().map(DialTarget::Address)
    }
}

/// Checks a host's shape; returns its IP address when it is one.
fn parse_host(host: &str) -> Result<Option<IpAddr>, AddressError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    let all_numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.is_empty() || name.len() > 253 || all_numeric || !name.split('.').all(valid_label) {
        return Err(AddressError::InvalidHost(host.to_owned()));
    }
    Ok(None)
}

fn parse_connect_port(port: &str) -> Result<u16, AddressError> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(AddressError::InvalidPort(port.to_owned())),
    }
}

/// Parses the answer to the listen-port prompt: empty means
/// [`DEFAULT_PORT`], `0` lets the system pick a free port.
///
/// ```
/// use rust_p2p_chat::chat::address::{parse_listen_port, DEFAULT_PORT};
///
/// assert_eq!(parse_listen_port(""), Ok(DEFAULT_PORT));
/// assert_eq!(parse_listen_port(" 9001 "), Ok(9001));
/// assert!(parse_listen_port("http").is_err());
/// ```
pub fn parse_listen_port(answer: &str) -> Result<u16, AddressError> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    answer
        .parse::<u16>()
        .map_err(|_| AddressError::InvalidPort(answer.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PeerAddress, AddressError> {
        s.parse()
    }

    #[test]
    fn accepts_ipv4_ipv6_and_names() {
        assert_eq!(
            parse("127.0.0.1:8080").map(|a| a.to_string()),
            Ok("127.0.0.1:8080".into())
        );
        assert_eq!(
            parse("[::1]:80").map(|a| a.ip()),
            Ok(Some("::1".parse().unwrap()))
        );
        assert_eq!(
            parse("localhost:1").map(|a| a.host().to_owned()),
            Ok("localhost".into())
        );
        assert_eq!(parse("my-host.example.org:443").map(|a| a.port()), Ok(443));
        assert_eq!(parse("  10.0.0.1:22 \n").map(|a| a.port()), Ok(22));
    }

    #[test]
    fn rejects_bad_ports() {
        for bad in [
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:http",
            "127.0.0.1:",
            "h:-1",
        ] {
            assert!(
                matches!(parse(bad), Err(AddressError::InvalidPort(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_missing_port_and_bad_hosts() {
        assert_eq!(parse(""), Err(AddressError::Empty));
        assert!(matches!(
            parse("127.0.0.1"),
            Err(AddressError::MissingPort(_))
        ));
        assert!(matches!(parse("[::1]"), Err(AddressError::MissingPort(_))));
        for bad in [
            ":80",
            "::1:80",
            "bad host:80",
            "999.1.1.1:80",
            "-x:80",
            "[zz]:80",
            "a/b:1",
        ] {
            assert!(
                matches!(parse(bad), Err(AddressError::InvalidHost(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_explain_themselves() {
        let err = parse("127.0.0.1:99999").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid port '99999': expected a number from 1 to 65535"
        );
    }

    #[test]
    fn listen_port_answers() {
        assert_eq!(parse_listen_port(""), Ok(8080));
        assert_eq!(parse_listen_port("0"), Ok(0));
        assert_eq!(parse_listen_port("65535"), Ok(65535));
        assert!(parse_listen_port("65536").is_err());
        assert!(parse_listen_port("-5").is_err());
    }
}
