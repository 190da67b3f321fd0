"""A program that monkey-patches with gevent itself, then runs a PresenceClient (for a test).

Usage: python gevent_program.py URL. Prints a line at each milestone; the test drives the server.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import threading  # noqa: E402

from presence_client import Backoff, PresenceClient, State  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def main(url: str) -> int:
    replies: list[object] = []
    got_beats = threading.Event()

    def on_reply(reply: object) -> None:
        replies.append(reply)
        if len(replies) >= 3:
            got_beats.set()

    client = PresenceClient(url, "green", heartbeat_interval=0.1, heartbeat_timeout=2.0,
                            backoff=Backoff(initial=0.05, max_delay=0.5))
    client.on("heartbeat_response", on_reply)
    client.start()
    say(f"patched {monkey.is_module_patched('threading')} {monkey.is_module_patched('socket')}")
    if not client.wait_online(15):
        say("not online")
        return 1
    say("online")
    if not got_beats.wait(15):
        say("no heartbeat replies")
        return 1
    say("beats")
    if not client.wait_for(State.RECONNECTING, 30):
        say("never lost the server")
        return 1
    if not client.wait_online(15):
        say("did not reconnect")
        return 1
    say("reconnected")
    client.close()
    say(f"closed {client.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
