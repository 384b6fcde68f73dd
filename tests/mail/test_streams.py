"""The send loop's MessageStream: the SMTP stream and the one-message-at-a-time stream both
implement it, and a stream that lacks a step does not."""

from email import message_from_bytes

from django.core.mail import EmailMessage, get_connection

from config.env import EML_BACKEND, SMTP_BACKEND
from mail.streams import ImmediateStream, MessageStream, SmtpStream, message_stream


def test_an_smtp_backend_gives_its_pipelining_stream():
    stream = message_stream(get_connection(SMTP_BACKEND, host="127.0.0.1", port=9))
    assert isinstance(stream, SmtpStream)
    assert isinstance(stream, MessageStream)


def test_a_backend_without_a_stream_sends_each_message_in_one_call_through_the_same_steps(tmp_path):
    stream = message_stream(get_connection(EML_BACKEND, file_path=str(tmp_path)))
    assert isinstance(stream, ImmediateStream)
    assert isinstance(stream, MessageStream)

    message = EmailMessage("Hello", "Body", "paperboy@example.org", ["ada@example.org"])
    handle = stream.begin("bounces@example.org", "ada@example.org", size=100)
    stream.accept(handle)
    stream.send(handle, message)
    stream.flush()
    stream.verdict(handle)

    [written] = tmp_path.glob("*.eml")
    assert message_from_bytes(written.read_bytes())["To"] == "ada@example.org"


def test_an_object_missing_a_step_is_not_a_message_stream():
    class NoVerdict:
        def begin(self, from_email, to, size=None): ...
        def accept(self, message): ...
        def send(self, message, email_message, data=None): ...
        def flush(self): ...

    assert not isinstance(NoVerdict(), MessageStream)
