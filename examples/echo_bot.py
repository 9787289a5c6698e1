#!/usr/bin/env python3
"""An echo bot for rust-p2p-chat, on its JSON API (docs/api.md).

Runs the chat with --json and the arguments given after `--`, takes the
nick `echo`, and answers every line someone else says with "echo: " and
the same text. Peer text arrives as JSON data, so nothing in it can act
on this program or a terminal.

    python3 examples/echo_bot.py --binary target/debug/rust-p2p-chat -- \
        --connect 127.0.0.1:9000 --no-mdns

Ends when the chat ends (or with Ctrl+C).
"""

import argparse
import json
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="rust-p2p-chat", help="the chat program")
    parser.add_argument("--nick", default="echo", help="the bot's nick")
    parser.add_argument("chat_args", nargs=argparse.REMAINDER, help="-- then the chat's flags")
    args = parser.parse_args()
    chat_args = [a for a in args.chat_args if a != "--"]

    chat = subprocess.Popen(
        [args.binary, "--json", *chat_args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        bufsize=1,
    )

    def say(command: dict) -> None:
        chat.stdin.write(json.dumps(command) + "\n")
        chat.stdin.flush()

    me = None
    say({"type": "nick", "name": args.nick})
    for raw in chat.stdout:
        event = json.loads(raw)
        kind = event["type"]
        if kind == "hello":
            me = event["peer_id"]
            print(f"echo bot: I am {me}", file=sys.stderr, flush=True)
        elif kind == "line" and not event["history"] and event["author"] != me:
            say({"type": "send", "text": "echo: " + event["text"]})
        elif kind == "error":
            print(f"echo bot: the chat refused a command: {event['text']}", file=sys.stderr)
    return chat.wait()


if __name__ == "__main__":
    sys.exit(main())
