//! The interactive front end: a line editor with history (up/down), and
//! incoming messages printed above the line being typed.
//!
//! One loop owns the editor. It polls the editor first on every turn, which
//! also prints whatever was queued for display, so the editor's print queue
//! never holds more than one batch; then it takes events from the app and
//! queues them as one batch. Ctrl+C asks the app to shut down; Ctrl+D ends
//! the input like EOF on a pipe. The terminal is restored on every way out.
//!
//! The editor is the rustyline-async in `vendor/`: the release, with a fix
//! for input lines wider than the terminal, whose first row it left on
//! screen when it cleared them.

use std::future::Future;
use std::io::Write;

use rustyline_async::{Readline, ReadlineError, ReadlineEvent};
use tokio::sync::mpsc;

use super::Style;
use crate::app::Shutdown;
use crate::chat::{Command, Event};

/// The input prompt, as the classic example session shows it
/// (`You: Hello from server!`).
pub const PROMPT: &str = "You: ";

/// Lines of typed history kept for up/down.
const HISTORY: usize = 500;

/// Largest batch of output queued at once.
const PRINT_BATCH: usize = 64 * 1024;

/// Runs `app` with the terminal as its front end, returning the app's
/// result once it ends and the terminal is restored.
pub async fn run<F: Future>(
    app: F,
    commands: mpsc::Sender<Command>,
    mut events: mpsc::Receiver<Event>,
    shutdown: Shutdown,
    style: Style,
) -> Result<F::Output, ReadlineError> {
    let (mut editor, mut printer) = Readline::new(PROMPT.to_owned())?;
    editor.set_max_history(HISTORY);
    let mut commands = Some(commands);
    // Typed (or pasted) lines wait here for room in the app's queue: the
    // app runs in this very loop, so waiting for room inside a branch would
    // stop the app that makes it (a paste of more lines than the queue
    // holds hung). The editor is still read, so Ctrl+C and Ctrl+D work
    // while lines wait, up to HELD_BYTES of them.
    let mut held = Held::default();
    // Ctrl+D: the input ends once the lines held are taken.
    let mut input_over = false;
    let mut batch = String::new();
    tokio::pin!(app);
    let output = loop {
        tokio::select! {
            biased;
            permit = reserve(commands.clone()), if !held.lines.is_empty() => match permit {
                Some(permit) => {
                    if let Some(line) = held.pop() {
                        permit.send(Command::Send(line));
                    }
                    if input_over && held.lines.is_empty() {
                        commands = None;
                    }
                }
                None => {
                    held = Held::default();
                    commands = None;
                }
            },
            input = editor.readline(), if held.bytes < HELD_BYTES => match input {
                Ok(ReadlineEvent::Line(line)) => {
                    editor.add_history_entry(line.clone());
                    // Sent by the first branch, as the app's queue has room.
                    if commands.is_some() && !input_over {
                        held.push(line);
                    }
                }
                Ok(ReadlineEvent::Eof) => {
                    input_over = true;
                    if held.lines.is_empty() {
                        commands = None;
                    }
                }
                Ok(ReadlineEvent::Interrupted) => shutdown.trigger(),
                Err(_) => {
                    shutdown.trigger();
                    commands = None;
                }
            },
            output = &mut app => break output,
            Some(event) = events.recv() => {
                let mut next = Some(event);
                while let Some(event) = next {
                    style.render(&event, &mut batch);
                    if let Event::Invite { ticket } = &event {
                        if let Some(code) = super::qr::render(ticket) {
                            batch.push_str(&code);
                            batch.push('\n');
                        }
                    }
                    next = if batch.len() < PRINT_BATCH { events.try_recv().ok() } else { None };
                }
                print(&mut printer, &mut batch);
            }
        }
    };
    while let Ok(event) = events.try_recv() {
        style.render(&event, &mut batch);
        if batch.len() >= PRINT_BATCH {
            print(&mut printer, &mut batch);
            editor.flush()?;
        }
    }
    print(&mut printer, &mut batch);
    editor.flush()?;
    Ok(output)
}

/// Most bytes of typed lines waiting for room in the app's queue; past
/// it the editor is not read until the app takes some.
const HELD_BYTES: usize = 1024 * 1024;

/// Typed lines waiting for room in the app's queue, in order.
#[derive(Default)]
struct Held {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Held {
    fn push(&mut self, line: String) {
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    fn pop(&mut self) -> Option<String> {
        let line = self.lines.pop_front()?;
        self.bytes -= line.len();
        Some(line)
    }
}

/// Room for one command in the app's queue; `None` once it is closed.
async fn reserve(commands: Option<mpsc::Sender<Command>>) -> Option<mpsc::OwnedPermit<Command>> {
    commands?.reserve_owned().await.ok()
}

/// Queues a batch of lines for the editor to print above the input line.
fn print(printer: &mut impl Write, batch: &mut String) {
    if !batch.is_empty() {
        // The queue is drained on every turn of the loop, so it has room;
        // if the terminal is gone there is nobody to tell.
        let _ = printer.write_all(batch.as_bytes());
        batch.clear();
    }
}
