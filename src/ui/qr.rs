//! An invite as a QR code on the terminal, for a phone's camera to read
//! off the screen.
//!
//! Two rows of modules per line of half blocks (`▀▄█`), so a ticket of
//! 120 characters (a version 5 code, 37 modules and the quiet zone) takes
//! 45 columns and 23 lines. The code is drawn light on dark, as terminals
//! mostly are: the blocks are the light modules and the quiet zone, and
//! the terminal's dark background makes the dark ones.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// The QR code of `text`, one line per two rows of modules; `None` when it
/// does not fit a code (far longer than any ticket).
pub fn render(text: &str) -> Option<String> {
    // Tickets are upper case letters and digits, which QR codes carry in
    // their compact alphanumeric mode.
    let code = QrCode::with_error_correction_level(text.to_ascii_uppercase(), EcLevel::L).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// The modules of the QR code of `text`, one string per row of `1`
/// (dark) and `0` (light), without the quiet zone: for a page to draw.
pub fn modules(text: &str) -> Option<Vec<String>> {
    let code = QrCode::with_error_correction_level(text.to_ascii_uppercase(), EcLevel::L).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    Some(
        colors
            .chunks(width.max(1))
            .map(|row| {
                row.iter()
                    .map(|c| if *c == qrcode::Color::Dark { '1' } else { '0' })
                    .collect()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::room_key::RoomKey;
    use crate::chat::ticket::Ticket;

    #[test]
    fn the_code_of_an_invite_with_two_addresses_fits_an_80_by_40_terminal() {
        fits(Vec::new());
        // And with two addresses through relays beside them.
        fits(vec![vec![0x42; 90], vec![0x24; 90]]);
    }

    fn fits(relayed: Vec<Vec<u8>>) {
        let ticket = Ticket {
            room: "family".into(),
            key: RoomKey::from_bytes([0xa5; 32]),
            inviter: [7; 16],
            addrs: vec![
                "192.168.178.20:51234".parse().unwrap(),
                "203.0.113.99:51234".parse().unwrap(),
            ],
            relayed,
            expires: Some(2_000_000_000),
        }
        .encode();
        let code = render(&ticket).unwrap();
        let lines: Vec<&str> = code.lines().collect();
        assert!(lines.len() <= 40, "{} lines", lines.len());
        assert!(
            lines.iter().all(|l| l.chars().count() <= 80),
            "{} columns",
            lines[0].chars().count()
        );
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(code
            .chars()
            .all(|c| " \u{2580}\u{2584}\u{2588}\n".contains(c)));
    }
}
