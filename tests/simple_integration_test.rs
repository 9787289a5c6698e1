//! Basic connection and messaging: two real processes chat over loopback.

mod common;

use common::Peer;

#[test]
fn two_peers_connect_and_exchange_messages() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);

    listener.expect_prefix("Peer connected from: 127.0.0.1:");
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");

    connector.send("hello from the connector");
    listener.expect_next("Peer: hello from the connector");

    listener.send("hello from the listener");
    connector.expect_next("Peer: hello from the listener");
}

#[test]
fn identical_lines_are_two_messages() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
    connector.send("same");
    connector.send("same");
    listener.expect_next("Peer: same");
    listener.expect_next("Peer: same");
}

#[test]
fn connector_exit_is_announced_and_listener_waits_again() {
    let (mut listener, port) = Peer::listen(&[]);
    let mut connector = Peer::connect(port);
    listener.expect_line("Type messages and press Enter to send (Ctrl+C to exit)");
    connector.send("bye");
    connector.close_input();
    assert!(connector.wait_exit().success());
    listener.expect_next("Peer: bye");
    listener.expect_next("Peer disconnected");
    listener.expect_next("Waiting for peer to connect...");
}

#[test]
fn library_peers_chat_without_a_terminal() {
    use rust_p2p_chat::classic::{self, Config, Received};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = classic::Listener::bind("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string().parse().unwrap();
        let (a, b) = tokio::join!(
            listener.accept(),
            classic::connect(&addr, Config::default())
        );
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        a.send("ping").await.unwrap();
        assert_eq!(
            b.next_event().await.unwrap(),
            Received::Message("ping".into())
        );
        b.send("pong").await.unwrap();
        assert_eq!(
            a.next_event().await.unwrap(),
            Received::Message("pong".into())
        );
        assert!(matches!(
            a.send("two\nlines").await,
            Err(classic::Error::MessageHasNewline)
        ));
        drop(b);
        assert_eq!(a.next_event().await.unwrap(), Received::Disconnected);
        assert_eq!(a.next_event().await.unwrap(), Received::Disconnected);
    });
}
