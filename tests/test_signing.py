"""Standard Webhooks signing and verification (service/signing.py), pure."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from service.signing import (
    SignatureError,
    secret_key,
    secret_keys,
    sign,
    sign_all,
    split_secrets,
    verify,
)

KEY = b"test-gateway-secret-1234567890"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_KEY = b"another-secret"
NOW = 1_700_000_000
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"transaction_id":"6f1c1c8e-58a4-4b43-9d51-6f1d1f3f4c1e","status":"completed"}'


def check(
    msg_id: str | None = MSG_ID,
    timestamp: str | None = str(NOW),
    signature: str | None = "good",
    body: bytes = BODY,
    *,
    key: bytes = KEY,
    now: float = NOW,
) -> None:
    """verify() with a good signature of the defaults ("good") unless told otherwise."""
    if signature == "good":
        signature = sign(KEY, MSG_ID, NOW, BODY)
    verify(key, msg_id, timestamp, signature, body, now=now)


def test_secret_key_is_the_base64_decoded_part_of_a_whsec_secret() -> None:
    assert secret_key(SECRET) == KEY
    assert secret_key(SECRET.removeprefix("whsec_")) == KEY


@pytest.mark.parametrize("secret", ["whsec_", "", "whsec_not base64!", "whsec_abc"])
def test_secret_key_refuses_an_empty_or_malformed_secret(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)


def test_sign_is_hmac_sha256_of_id_timestamp_and_body_in_base64() -> None:
    signed_content = f"{MSG_ID}.{NOW}.".encode() + BODY
    digest = hmac.new(KEY, signed_content, hashlib.sha256).digest()
    assert sign(KEY, MSG_ID, NOW, BODY) == "v1," + base64.b64encode(digest).decode()


def test_sign_then_verify_round_trips() -> None:
    check()


def test_verify_uses_the_current_time_by_default() -> None:
    import time

    now = int(time.time())
    verify(KEY, MSG_ID, str(now), sign(KEY, MSG_ID, now, BODY), BODY)


@pytest.mark.parametrize(
    ("change", "kwargs"),
    [
        ("wrong secret", {"key": OTHER_KEY}),
        ("tampered body", {"body": BODY.replace(b"completed", b"failed")}),
        ("extra byte in body", {"body": BODY + b" "}),
        ("tampered id", {"msg_id": MSG_ID + "x"}),
        ("another timestamp", {"timestamp": str(NOW + 1)}),
        ("signature of another message", {"signature": sign(KEY, "other", NOW, BODY)}),
        ("garbage signature", {"signature": "v1,AAAA"}),
        ("signature without version", {"signature": sign(KEY, MSG_ID, NOW, BODY)[3:]}),
        ("other version", {"signature": "v2," + sign(KEY, MSG_ID, NOW, BODY)[3:]}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_verify_refuses_a_signature_that_does_not_match(change: str, kwargs: dict) -> None:
    with pytest.raises(SignatureError):
        check(**kwargs)


@pytest.mark.parametrize("offset", [301, -301, 360, -360, 86_400, -86_400])
def test_verify_refuses_a_timestamp_more_than_five_minutes_off(offset: int) -> None:
    sent_at = NOW + offset
    with pytest.raises(SignatureError):
        check(timestamp=str(sent_at), signature=sign(KEY, MSG_ID, sent_at, BODY))


@pytest.mark.parametrize("offset", [0, 300, -300, 299, -299])
def test_verify_accepts_a_timestamp_within_five_minutes(offset: int) -> None:
    sent_at = NOW + offset
    check(timestamp=str(sent_at), signature=sign(KEY, MSG_ID, sent_at, BODY))


@pytest.mark.parametrize(
    "missing", ["msg_id", "timestamp", "signature"], ids=lambda name: f"no-{name}"
)
@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty"])
def test_verify_refuses_a_missing_header(missing: str, value: str | None) -> None:
    with pytest.raises(SignatureError):
        check(**{missing: value})


@pytest.mark.parametrize("timestamp", ["abc", "1700000000.5", "17e8", "2023-11-14T22:13:20Z"])
def test_verify_refuses_a_timestamp_that_is_not_unix_seconds(timestamp: str) -> None:
    with pytest.raises(SignatureError):
        check(timestamp=timestamp)


@pytest.mark.parametrize(
    "header",
    [
        "v1,AAAA {good}",
        "{good} v1,AAAA",
        "v1,AAAA v1,BBBB {good} v1,CCCC",
        "v1,{other} {good}",
    ],
)
def test_verify_accepts_several_signatures_when_one_matches(header: str) -> None:
    good = sign(KEY, MSG_ID, NOW, BODY)
    other = sign(OTHER_KEY, MSG_ID, NOW, BODY).removeprefix("v1,")
    check(signature=header.format(good=good, other=other))


def test_verify_refuses_several_signatures_when_none_matches() -> None:
    other = sign(OTHER_KEY, MSG_ID, NOW, BODY)
    with pytest.raises(SignatureError):
        check(signature=f"v1,AAAA {other} v1,BBBB")


@pytest.mark.parametrize(
    "timestamp",
    [
        f" +{NOW} ",
        f"+{NOW}",
        f" {NOW}",
        f"{NOW}\t",
        "1_700_000_000",
        str(NOW).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),  # Arabic-Indic digits
    ],
)
def test_verify_refuses_a_timestamp_that_is_not_a_plain_integer_even_signed_as_its_number(
    timestamp: str,
) -> None:
    # The signature is over the number the text names: parsing the header and signing the
    # number again would accept it, though the text received is not what was signed.
    with pytest.raises(SignatureError):
        check(timestamp=timestamp, signature=sign(KEY, MSG_ID, NOW, BODY))


def test_verify_signs_the_timestamp_as_the_exact_text_received() -> None:
    padded = f"0{NOW}"  # a plain integer, the same instant, another text

    check(timestamp=padded, signature=sign(KEY, MSG_ID, padded, BODY))
    with pytest.raises(SignatureError):
        check(timestamp=padded, signature=sign(KEY, MSG_ID, NOW, BODY))


# --- several secrets (rotation) --------------------------------------------------------------

NEW_KEY = b"the-new-secret-after-rotation"
THIRD_KEY = b"a-third-secret-nobody-configured"


def test_sign_all_is_one_v1_signature_per_key_space_separated() -> None:
    header = sign_all((KEY, NEW_KEY), MSG_ID, NOW, BODY)

    assert header == f"{sign(KEY, MSG_ID, NOW, BODY)} {sign(NEW_KEY, MSG_ID, NOW, BODY)}"
    assert sign_all((KEY,), MSG_ID, NOW, BODY) == sign(KEY, MSG_ID, NOW, BODY)


@pytest.mark.parametrize("receiver_key", [KEY, NEW_KEY], ids=["old key alone", "new key alone"])
def test_a_message_signed_with_two_keys_verifies_with_each_key_alone(receiver_key: bytes) -> None:
    check(signature=sign_all((KEY, NEW_KEY), MSG_ID, NOW, BODY), key=receiver_key)


@pytest.mark.parametrize("sender_key", [KEY, NEW_KEY], ids=["signed old", "signed new"])
def test_verify_with_several_keys_accepts_a_signature_of_any_of_them(sender_key: bytes) -> None:
    verify((KEY, NEW_KEY), MSG_ID, str(NOW), sign(sender_key, MSG_ID, NOW, BODY), BODY, now=NOW)


def test_verify_with_several_keys_refuses_a_signature_of_a_third_key() -> None:
    with pytest.raises(SignatureError):
        verify((KEY, NEW_KEY), MSG_ID, str(NOW), sign(THIRD_KEY, MSG_ID, NOW, BODY), BODY, now=NOW)


def test_verify_with_no_key_refuses_everything() -> None:
    with pytest.raises(SignatureError):
        verify((), MSG_ID, str(NOW), sign(KEY, MSG_ID, NOW, BODY), BODY, now=NOW)


@pytest.mark.parametrize(
    ("value", "secrets"),
    [
        ("", ()),
        ("whsec_YQ==", ("whsec_YQ==",)),
        ("whsec_YQ== whsec_Yg==", ("whsec_YQ==", "whsec_Yg==")),
        ("  whsec_YQ==\n\twhsec_Yg==  ", ("whsec_YQ==", "whsec_Yg==")),
        (("whsec_YQ==", "whsec_Yg=="), ("whsec_YQ==", "whsec_Yg==")),
    ],
)
def test_split_secrets_takes_a_list_or_a_whitespace_separated_string(
    value: str | tuple[str, ...], secrets: tuple[str, ...]
) -> None:
    assert split_secrets(value) == secrets


def test_secret_keys_decodes_each_secret_in_order() -> None:
    new_secret = "whsec_" + base64.b64encode(NEW_KEY).decode()
    assert secret_keys((SECRET, new_secret)) == (KEY, NEW_KEY)
