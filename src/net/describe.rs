//! Dial and connection errors in a user's words: the socket's own error
//! ("connection refused") rather than the layers of transport wrappers
//! around it.

use libp2p::swarm::DialError;

use crate::chat::describe_io;

/// A dial error in a user's words: the first underlying I/O error when
/// there is one ("connection refused"), otherwise what failed.
pub(super) fn describe_dial(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) => attempts
            .first()
            .map(|(_, e)| describe_transport(e))
            .unwrap_or_else(|| "no address to try".into()),
        DialError::WrongPeerId { obtained, .. } => {
            format!("the peer there is {obtained}, not the one asked for")
        }
        DialError::Denied { cause } => format!("refused by a local limit: {cause}"),
        DialError::LocalPeerId { .. } => "that address is ourselves".into(),
        DialError::NoAddresses => "no address to try".into(),
        DialError::DialPeerConditionFalse(_) | DialError::Aborted => {
            "the attempt was aborted".into()
        }
    }
}

pub(super) fn describe_transport(error: &libp2p::TransportError<std::io::Error>) -> String {
    match error {
        libp2p::TransportError::MultiaddrNotSupported(addr) => {
            format!("unsupported address {addr}")
        }
        libp2p::TransportError::Other(e) => describe_upgrade(e),
    }
}

/// An I/O error from the transport: either the socket's own error, or a
/// failed negotiation wrapped in one, which almost always means the other
/// side does not speak this protocol.
fn describe_upgrade(error: &std::io::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_none() {
                return describe_io(io);
            }
        }
        source = inner.source();
    }
    // The transport's own wrappers (`Either`s of its layers) forward
    // `source()` past the socket's error, so the walk above misses it; its
    // text still ends in the OS error number, which is what it was.
    if let Some(os) = os_error_in(&error.to_string()) {
        return describe_io(&os);
    }
    match error.kind() {
        std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData => {
            let text = error.to_string().to_lowercase();
            if text.contains("handshake") || text.contains("negotiat") || text.contains("protocol")
            {
                "the secure handshake failed: the peer may not speak this protocol (is it running with --plain?)".into()
            } else {
                text
            }
        }
        _ => describe_io(error),
    }
}

/// The OS error whose text ends `text` (`Connection refused (os error
/// 111)`, as `io::Error` writes one), if it does.
fn os_error_in(text: &str) -> Option<std::io::Error> {
    let code = text.strip_suffix(')')?.rsplit_once(" (os error ")?.1;
    code.parse().ok().map(std::io::Error::from_raw_os_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for the transport's `Either` wrappers: it shows the socket's
    /// error but, forwarding `source()`, never hands it out.
    #[derive(Debug)]
    struct Wrapper(std::io::Error);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.source()
        }
    }

    #[test]
    fn a_socket_error_behind_the_transport_wrappers_reads_plainly() {
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let wrapped = std::io::Error::other(Wrapper(refused));
        assert_eq!(describe_upgrade(&wrapped), "connection refused");
        let other = std::io::Error::other("noise handshake failed");
        assert!(describe_upgrade(&other).starts_with("the secure handshake failed"));
    }
}
