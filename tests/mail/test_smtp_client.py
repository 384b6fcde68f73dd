"""The two-step SMTP client (mail/smtp_client.py) against a real aiosmtpd server, with and without
PIPELINING on offer."""

import smtplib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mail import smtp_client
from mail.backends import SmtpBackend
from mail.streams import message_stream
from tests.support.smtp_sink import SmtpSink

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
    b".starts with a dot\r\nmiddle\r\n..two dots\r\n.\r\nlast line"
)


class CountingSMTP(smtplib.SMTP):
    """Counts the writes the client makes: one per command without pipelining."""

    writes = 0

    def send(self, s):
        self.writes += 1
        super().send(s)


class CountingClient(smtp_client.TwoStepSending, CountingSMTP):
    pass


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def server(request):
    with SmtpSink(pipelining=request.param) as sink:
        yield sink


def client(sink: SmtpSink) -> CountingClient:
    connection = CountingClient(sink.host, sink.port, timeout=10)
    connection.ehlo()
    return connection


@given(st.binary(max_size=300) | st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"x", b"\r"])).map(b"".join))
def test_data_is_quoted_exactly_as_smtplib_quotes_it(data):
    expected = smtplib._quote_periods(data)
    if expected[-2:] != b"\r\n":
        expected += b"\r\n"
    assert smtp_client.with_periods_quoted(data) == expected + b".\r\n"


def test_the_server_receives_the_message_byte_for_byte(server):
    connection = client(server)

    assert connection.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}
    connection.quit()

    assert server.received[0].data == MESSAGE + b"\r\n"  # the data ends with the line break DATA adds
    assert server.received[0].rcpt_tos == ("b@example.org",)


def test_with_pipelining_the_envelope_is_one_write(server):
    connection = client(server)
    before = connection.writes

    connection.sendmail("a@example.org", ["b@example.org"], MESSAGE)

    # MAIL, RCPT and DATA in one write, then the data; without PIPELINING one write each.
    assert connection.writes - before == (2 if server.pipelining else 4)
    assert connection.has_extn("pipelining") == server.pipelining


def test_the_next_envelope_goes_out_with_the_data_and_the_answers_come_together(server):
    connection = client(server)
    first = connection.begin("a@example.org", ["b@example.org"])
    connection.accept(first)
    connection.send_data(first, MESSAGE)
    second = connection.begin("a@example.org", ["c@example.org"])
    before = connection.writes

    connection.flush()
    connection.verdict(first)
    connection.accept(second)

    # With PIPELINING the data and the next envelope are one write; without, the envelope
    # waits for the verdict and goes command by command.
    assert connection.writes - before == (1 if server.pipelining else 4)
    connection.send_data(second, MESSAGE)
    connection.verdict(second)
    assert server.per_recipient() == {"b@example.org": 1, "c@example.org": 1}


def test_the_stream_returns_before_the_server_answers_the_data():
    from django.core.mail import EmailMessage

    with SmtpSink(data_delay=0.3, pipelining=True) as sink:
        backend = SmtpBackend(host=sink.host, port=sink.port, timeout=10)
        stream = message_stream(backend)
        email = EmailMessage("Hi", "Body", "a@example.org", ["b@example.org"])
        started = time.monotonic()
        handle = stream.begin("a@example.org", "b@example.org")
        stream.accept(handle)
        stream.send(handle, email)
        stream.flush()
        # The server holds its answer to the data for 0.3 s: nothing above waited for it.
        assert (len(sink.received), time.monotonic() - started < 0.3) == (0, True)

        stream.verdict(handle)

        assert [r.rcpt_tos for r in sink.received] == [("b@example.org",)]
        with pytest.raises(ValueError, match="differ"):
            other = stream.begin("a@example.org", "b@example.org")
            stream.accept(other)
            stream.send(other, EmailMessage("Hi", "Body", "a@example.org", ["c@example.org"]))
        backend.close()


def test_a_message_begun_on_a_connection_that_died_before_answering_is_begun_again_once(server):
    from django.core.mail import EmailMessage

    server.script("dropped@example.org", "disconnect")
    backend = SmtpBackend(host=server.host, port=server.port, timeout=10)
    stream = message_stream(backend)
    dropped = stream.begin("a@example.org", "dropped@example.org")
    stream.accept(dropped)
    stream.send(dropped, EmailMessage("Hi", "Body", "a@example.org", ["dropped@example.org"]))
    fine = stream.begin("a@example.org", "fine@example.org")
    stream.flush()

    with pytest.raises(smtplib.SMTPServerDisconnected):
        stream.verdict(dropped)
    stream.accept(fine)  # on a new connection
    stream.send(fine, EmailMessage("Hi", "Body", "a@example.org", ["fine@example.org"]))
    stream.flush()
    stream.verdict(fine)

    assert (server.per_recipient(), server.connections) == ({"fine@example.org": 1}, 2)
    backend.close()


@pytest.mark.parametrize("answer", ["550 5.1.1 No such user", "451 4.7.1 Try again later"])
def test_a_refused_recipient_raises_with_its_code_and_the_connection_sends_the_next_message(server, answer):
    server.script("gone@example.org", answer)  # this answer once, then 250
    connection = client(server)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        connection.sendmail("a@example.org", ["gone@example.org"], MESSAGE)
    assert refused.value.recipients["gone@example.org"][0] == int(answer[:3])

    assert connection.sendmail("a@example.org", ["gone@example.org"], MESSAGE) == {}
    assert server.per_recipient() == {"gone@example.org": 1}


def test_one_refused_recipient_of_two_is_returned_as_sendmail_returns_it(server):
    server.always("gone@example.org", "550 5.1.1 No such user")
    connection = client(server)

    refused = connection.sendmail("a@example.org", ["gone@example.org", "b@example.org"], MESSAGE)

    assert list(refused) == ["gone@example.org"]
    assert server.per_recipient() == {"b@example.org": 1}


def test_a_421_closes_the_connection(server):
    server.script("b@example.org", "421 4.3.2 Shutting down")
    connection = client(server)

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        connection.sendmail("a@example.org", ["b@example.org"], MESSAGE)

    assert connection.sock is None


def test_a_server_that_drops_the_connection_after_the_data_fails_the_verdict(server):
    server.script("b@example.org", "disconnect")
    connection = client(server)

    transaction = connection.begin("a@example.org", ["b@example.org"])
    connection.accept(transaction)
    connection.send_data(transaction, MESSAGE)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        connection.verdict(transaction)

    assert (server.received, connection.sock) == ([], None)


def test_the_steps_are_taken_in_order(server):
    connection = client(server)

    first = connection.begin("a@example.org", ["b@example.org"])
    with pytest.raises(smtplib.SMTPException, match="waiting"):
        connection.begin("a@example.org", ["b@example.org"])  # before the first envelope's answers
    with pytest.raises(smtplib.SMTPException, match="not accepted"):
        connection.send_data(first, MESSAGE)
    connection.accept(first)
    connection.send_data(first, MESSAGE)
    assert connection.verdict(first) == {}


def test_quitting_in_the_middle_of_a_message_hangs_up_and_sends_nothing(server):
    connection = client(server)
    transaction = connection.begin("a@example.org", ["b@example.org"])
    connection.accept(transaction)  # the server now reads data: a QUIT would be taken as data

    connection.quit()

    assert (connection.sock, transaction.lost) == (None, True)
    time.sleep(0.1)
    assert server.received == []


@given(
    st.from_regex(r"[a-z0-9.+_-]{1,12}@[a-z0-9-]{1,8}(\.[a-z]{2,4}){0,2}", fullmatch=True)
    | st.sampled_from(["Paperboy <paperboy@example.org>", '"Doe, J." <j@example.org>', "<a@b>", "x"])
)
def test_addresses_are_quoted_as_smtplib_quotes_them(address):
    assert smtp_client.quoted_address(address) == smtplib.quoteaddr(address)


def test_a_refused_message_leaves_the_pipelined_next_message_intact(server):
    # The next envelope went out with the refused message's data: an RSET after the refusal would
    # land inside the next message's data.
    server.refuse_data("spam@example.org", "554 5.7.1 Message rejected as spam")
    connection = client(server)
    first = connection.begin("a@example.org", ["spam@example.org"])
    connection.accept(first)
    connection.send_data(first, MESSAGE)
    second = connection.begin("a@example.org", ["b@example.org"])
    connection.flush()

    with pytest.raises(smtplib.SMTPDataError) as refused:
        connection.verdict(first)
    assert refused.value.smtp_code == 554
    connection.accept(second)
    connection.send_data(second, MESSAGE)
    connection.verdict(second)

    assert [r.data for r in server.received] == [MESSAGE + b"\r\n"]
    assert connection.sendmail("a@example.org", ["c@example.org"], MESSAGE) == {}


def test_the_size_goes_with_mail_from_when_the_server_offers_size(server):
    connection = client(server)

    connection.sendmail("a@example.org", ["b@example.org"], MESSAGE)

    assert connection.size_limit() == 33554432  # aiosmtpd's
    assert server.received[0].mail_options == (f"SIZE={len(MESSAGE)}",)


def test_a_message_over_the_servers_size_limit_is_refused_before_anything_is_written():
    with SmtpSink(pipelining=True, size_limit=1000) as sink:
        connection = client(sink)
        writes = connection.writes

        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            connection.begin("a@example.org", ["b@example.org"], size=1001)

        assert (refused.value.smtp_code, connection.writes) == (552, writes)
        assert b"5.3.4" in refused.value.smtp_error
        assert connection.sendmail("a@example.org", ["b@example.org"], MESSAGE) == {}  # a smaller one goes
        assert len(sink.received) == 1


@pytest.mark.parametrize("address", ["jörg@example.org", "Jörg <jörg@example.org>"])
def test_a_local_part_that_is_not_ascii_is_refused_before_anything_is_written(server, address):
    from django.core.mail import EmailMessage

    backend = SmtpBackend(host=server.host, port=server.port, timeout=10)
    with pytest.raises(smtp_client.UnsendableAddress, match="SMTPUTF8"):
        backend.send_messages([EmailMessage("Hi", "Body", "a@example.org", [address])])
    with pytest.raises(smtp_client.UnsendableAddress):
        message_stream(backend).begin("a@example.org", address)

    # An international domain name is written as IDNA, a valid address.
    assert backend.send_messages([EmailMessage("Hi", "Body", "a@example.org", ["jorg@bücher.example"])]) == 1
    assert [r.rcpt_tos for r in server.received] == [("jorg@xn--bcher-kva.example",)]
    backend.close()
