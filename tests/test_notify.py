"""Messages from events, and the notifier's delivery: order, digests, retries, giving up, stopping.

Destinations here are stand-ins that fail as told; the real Apprise path is test_watch.py's."""

import logging
import subprocess
import threading
import time

import needs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui import notify
from rlhf_tui.core.text import one_line
from rlhf_tui.events import Event
from rlhf_tui.notify import Notifier, compose, message, report_command


def event(kind="crash", name="dpo-a", path="/runs/dpo-a", detail="RuntimeError: boom", **extra) -> Event:
    fields = dict(
        kind=kind,
        path=path,
        name=name,
        host="gpu-7",
        trainer="DPO",
        step=120,
        max_steps=500,
        status="Crashed (exception)",
        what="Crashed (exception)",
        detail=detail,
        time=1.0,
    )
    return Event(**{**fields, **extra})


class Destination:
    """Takes messages, failing the first `failures` tries (or raising when `raises`)."""

    label = "stand-in"

    def __init__(self, failures: int = 0, raises: bool = False) -> None:
        self.failures = failures
        self.raises = raises
        self.tries = 0
        self.taken: list[notify.Message] = []
        self.changed = threading.Condition()

    def send(self, message) -> bool:
        with self.changed:
            self.tries += 1
            self.changed.notify_all()
            if self.tries <= self.failures:
                if self.raises:
                    raise ConnectionError("no route to host")
                return False
            self.taken.append(message)
            self.changed.notify_all()
            return True

    def wait(self, condition, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition():
                assert self.changed.wait(deadline - time.monotonic()), "the notifier did not get there"


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Short windows and retries: what is tested is what happens, not how long it takes."""
    monkeypatch.setattr(notify, "COLLECT_SECONDS", 0.05)
    monkeypatch.setattr(notify, "FIRST_RETRY_SECONDS", 0.02)
    monkeypatch.setattr(notify, "MAX_RETRY_SECONDS", 0.05)


def test_a_message_says_run_host_trainer_step_status_detail_and_how_to_open_it():
    sent = message(event())
    assert sent.title == "[rlhf-top] dpo-a: Crashed (exception)"
    assert sent.body.splitlines() == [
        "run: dpo-a",
        "host: gpu-7",
        "trainer: DPO",
        "step: 120 / 500",
        "status: Crashed (exception)",
        "detail: RuntimeError: boom",
        "open: rlhf-top report /runs/dpo-a",
    ]
    assert sent.level == "failure"
    assert message(event(kind="finish")).level == "success"
    assert "step: none logged" in message(event(step=None)).body


def pasted(command: str) -> bytes:
    """The argument bash hands `rlhf-top report` when the command is pasted."""
    bash = needs.command("bash", "apt-get install bash")
    shown = command.removeprefix("rlhf-top report ")
    return subprocess.run([bash, "-c", f"printf %s {shown}"], capture_output=True, check=True).stdout


def test_the_report_command_is_safe_to_paste_whatever_the_run_directory_is_called():
    assert report_command("/runs/a b; rm -rf ~") == "rlhf-top report '/runs/a b; rm -rf ~'"
    hostile = "/runs/it's\x1b]0;x\x07$(touch pwned)\x1b"
    assert report_command(hostile) == r"rlhf-top report $'/runs/it\x27s\x1b]0;x\x07$(touch pwned)\x1b'"
    assert pasted(report_command(hostile)) == hostile.encode()


# A name as the file system gives it: any character, undecodable bytes as lone surrogates (\udc80-\udcff).
PATH_CHARACTERS = st.one_of(st.characters(exclude_categories=["Cs"]), st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF))


@settings(max_examples=examples(60), deadline=None)
@given(name=st.text(PATH_CHARACTERS.filter(lambda c: c not in "\x00/"), min_size=1, max_size=30))
def test_bash_reads_the_report_command_back_as_the_very_path(name):
    path = f"/runs/{name}"
    command = report_command(path)
    assert "\n" not in command and one_line(command, len(command) + 1) == command
    assert pasted(command) == path.encode("utf-8", "surrogateescape")


def test_many_events_at_once_make_one_digest_and_a_few_make_one_message_each():
    few = [event(name=f"r{i}", path=f"/runs/r{i}") for i in range(3)]
    assert [m.title for m in compose(few)] == [f"[rlhf-top] r{i}: Crashed (exception)" for i in range(3)]
    many = few + [event(kind="killed", name="r3", path="/runs/r3", status="Killed"), event(kind="finish", name="r4")]
    (digest,) = compose(many)
    assert digest.title == "[rlhf-top] 5 events at once: 3 crash, 1 killed, 1 finish"
    assert digest.level == "failure"
    assert digest.events == tuple(many)
    lines = digest.body.splitlines()
    assert lines[:3] == [
        "r0 · Crashed (exception) · step 120 / 500 · DPO · gpu-7",
        "  RuntimeError: boom",
        "  rlhf-top report /runs/r0",
    ]
    assert len(lines) == 15


def test_each_destination_gets_every_message_once_in_order():
    first, second = Destination(), Destination()
    done = []
    notifier = Notifier([first, second], on_done=done.append)
    for i in range(3):
        notifier.add([event(name=f"r{i}")])
        second.wait(lambda: len(second.taken) == i + 1)
    notifier.close()
    for destination in (first, second):
        assert [m.title for m in destination.taken] == [f"[rlhf-top] r{i}: Crashed (exception)" for i in range(3)]
    assert [m.events[0].name for m in done] == ["r0", "r1", "r2"]


def test_events_arriving_together_are_sent_as_one_digest():
    destination = Destination()
    notifier = Notifier([destination])
    notifier.add([event(name=f"r{i}") for i in range(3)])
    notifier.add([event(name=f"r{i}") for i in range(3, 6)])
    destination.wait(lambda: destination.taken)
    notifier.close()
    assert [m.title for m in destination.taken] == ["[rlhf-top] 6 events at once: 6 crash"]


def test_a_failed_delivery_is_retried_with_backoff_and_logged_and_order_is_kept(caplog):
    caplog.set_level(logging.INFO, logger="rlhf_tui.notify")
    destination = Destination(failures=3, raises=True)
    done = []
    notifier = Notifier([destination], on_done=done.append)
    notifier.add([event(name="first")])
    destination.wait(lambda: destination.tries >= 2)
    notifier.add([event(name="second")])
    destination.wait(lambda: len(destination.taken) == 2)
    notifier.close()
    assert [m.events[0].name for m in destination.taken] == ["first", "second"]
    assert [m.events[0].name for m in done] == ["first", "second"]
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3
    assert "raised ConnectionError: no route to host" in caplog.text
    assert "(attempt 3); retrying in 0 s" in retries[-1]


def test_a_destination_that_never_takes_a_message_is_given_up_on_and_the_others_get_it(caplog, monkeypatch):
    monkeypatch.setattr(notify, "GIVE_UP_SECONDS", 0.1)
    dead, alive = Destination(failures=10**6), Destination()
    done = []
    notifier = Notifier([dead, alive], on_done=done.append)
    notifier.add([event()])
    alive.wait(lambda: alive.taken)
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    notifier.close()
    assert [m.events[0].name for m in done] == ["dpo-a"]
    assert "gave up sending '[rlhf-top] dpo-a: Crashed (exception)' to stand-in" in caplog.text


def test_what_cannot_be_sent_when_closing_is_not_counted_as_done(caplog, monkeypatch):
    monkeypatch.setattr(notify, "COLLECT_SECONDS", 60.0)
    dead = Destination(failures=10**6)
    done = []
    notifier = Notifier([dead], on_done=done.append)
    notifier.add([event()])
    notifier.close()
    assert dead.tries == 1
    assert done == []
    assert "not sent '[rlhf-top] dpo-a: Crashed (exception)' to stand-in: stopping" in caplog.text
