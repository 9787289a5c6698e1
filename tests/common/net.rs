//! Raw sockets standing in for a peer, the way `nc` talks to the program,
//! and loopback ports in a known state.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// A raw TCP peer, the way `nc` talks to the program.
pub struct RawPeer {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawPeer {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> RawPeer {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        RawPeer::from_stream(stream)
    }

    /// Wraps an accepted stream.
    pub fn from_stream(stream: TcpStream) -> RawPeer {
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        RawPeer { stream, reader }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to peer");
    }

    /// Reads one line (without the newline); `None` on EOF.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                assert_eq!(line.pop(), Some(b'\n'), "line without newline: {line:?}");
                Some(String::from_utf8_lossy(&line).into_owned())
            }
            Err(e) => panic!("read from peer: {e}"),
        }
    }

    /// Closes our sending direction.
    pub fn finish(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Closes the connection abruptly with a TCP reset.
    pub fn reset(self) {
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .expect("set linger");
        drop(self.stream);
    }
}

/// A listening socket on a free loopback port, standing in for a peer.
pub fn raw_listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (listener, port)
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let (listener, port) = raw_listener();
    drop(listener);
    port
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on port {port}");
}
