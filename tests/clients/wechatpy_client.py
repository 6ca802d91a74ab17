"""WeChat's side of a kefu Official Account callback, played by wechatpy
(an independent implementation of WeChat's signing and message crypto).

Signs (and in safe mode encrypts) messages the way WeChat's servers do, POSTs
them to kefu, and checks kefu's replies with wechatpy: signature, AppId and
decryption in safe mode, then parse_message. Prints one JSON summary.

WeCom 微信客服 (wecom): the URL check with an encrypted echostr, and
doorbells (kf_msg_or_event) encrypted with wechatpy's WeCom crypto; kefu then
pulls the messages from the test's fake WeCom API.

Usage: wechatpy_client.py URL TOKEN AES_KEY APP_ID roundtrip
       wechatpy_client.py URL TOKEN AES_KEY APP_ID load SENDERS MESSAGES
       wechatpy_client.py URL TOKEN AES_KEY APP_ID burst COUNT
       wechatpy_client.py URL TOKEN AES_KEY CORP_ID wecom DOORBELLS
"""

import concurrent.futures
import json
import random
import string
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.utils import WeChatSigner

URL, TOKEN, AES_KEY, APP_ID, COMMAND = sys.argv[1:6]
ARGS = sys.argv[6:]
CRYPTO = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
ACCOUNT = "gh_kefu_demo"

QUESTIONS = ["退货地址是哪里", "你们几点上班", "我的快递到哪了", "怎么开发票", "Where do I send a return?",
             "冰箱不制冷了怎么办", "可以用花呗分期吗", "订单12345可以改地址吗"]


def nonce():
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(10))


def signature(*parts):
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def text_xml(openid, msg_id, content):
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def request(method, query, body=None):
    url = URL + "?" + urllib.parse.urlencode(query)
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def send(openid, msg_id, content, safe):
    """POSTs one message as WeChat would; returns (status, reply text, seconds)."""
    timestamp, n = str(int(time.time())), nonce()
    query = {"signature": signature(TOKEN, timestamp, n), "timestamp": timestamp, "nonce": n, "openid": openid}
    body = text_xml(openid, msg_id, content)
    if safe:
        envelope = xmltodict.parse(CRYPTO.encrypt_message(body, n, timestamp))["xml"]
        query.update(encrypt_type="aes", msg_signature=envelope["MsgSignature"])
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
    started = time.monotonic()
    status, reply = request("POST", query, body)
    return status, reply, time.monotonic() - started


def read_reply(reply, safe, openid):
    """kefu's passive reply checked and parsed by wechatpy; None for 'success'."""
    if reply == "success":
        return None
    if safe:
        envelope = xmltodict.parse(reply)["xml"]
        # Checks msg_signature and the AppId inside, and undoes the 32-byte padding.
        reply = CRYPTO.decrypt_message(reply, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
    message = parse_message(reply)
    assert message.type == "text", reply
    assert (message.source, message.target) == (ACCOUNT, openid), reply
    assert message.content.strip(), reply
    return message.content


def padding_above_16(content, openid):
    """Whether WeChat's padding of this message's encryption exceeds 16 bytes."""
    length = 16 + 4 + len(text_xml(openid, 1, content).encode()) + len(APP_ID)
    return 32 - length % 32 > 16


def roundtrip():
    summary = {"url_checks": 0, "plain": 0, "safe": 0, "safe_long_padding": 0, "retries_answered_once": 0,
               "forged_refused": 0}
    for _ in range(2):
        timestamp, n, echo = str(int(time.time())), nonce(), nonce()
        status, body = request("GET", {"signature": signature(TOKEN, timestamp, n), "timestamp": timestamp,
                                       "nonce": n, "echostr": echo})
        assert (status, body) == (200, echo), (status, body)
        summary["url_checks"] += 1
    msg_id = int(time.time() * 1000)
    for safe in (False, True):
        for i in range(24):
            openid = f"o-roundtrip-{i % 3}"
            # Lengths vary so that paddings of 1..32 bytes all occur.
            content = QUESTIONS[i % len(QUESTIONS)] + "。" * (i % 11)
            msg_id += 1
            status, reply, _ = send(openid, msg_id, content, safe)
            assert status == 200, (status, reply)
            assert read_reply(reply, safe, openid) is not None, reply
            summary["safe" if safe else "plain"] += 1
            if safe and padding_above_16(content, openid):
                summary["safe_long_padding"] += 1
    # WeChat retries a message three times in all: one answer.
    msg_id += 1
    replies = [send("o-retry", msg_id, "退货地址是哪里", True)[1] for _ in range(3)]
    answered = [read_reply(r, True, "o-retry") for r in replies]
    if answered[0] is not None and answered[1:] == [None, None]:
        summary["retries_answered_once"] = 1
    # A message signed with another token is refused.
    timestamp, n = str(int(time.time())), nonce()
    query = {"signature": signature("not-the-token", timestamp, n), "timestamp": timestamp, "nonce": n}
    status, _ = request("POST", query, text_xml("o-forger", msg_id + 1, "hi"))
    summary["forged_refused"] = int(status == 403)
    return summary


def load(senders, messages):
    """`senders` concurrent customers, `messages` each: passive reply latency."""
    base = int(time.time() * 1000) * 100

    def customer(c):
        out = []
        for m in range(messages):
            status, reply, seconds = send(f"o-load-{c}", base + c * 1000 + m, QUESTIONS[(c + m) % len(QUESTIONS)], c % 2 == 1)
            assert status == 200, (status, reply)
            out.append((seconds, read_reply(reply, c % 2 == 1, f"o-load-{c}") is None))
        return out

    with concurrent.futures.ThreadPoolExecutor(senders) as pool:
        results = [r for rs in pool.map(customer, range(senders)) for r in rs]
    latencies = sorted(s * 1000 for s, _ in results)
    rank = lambda q: latencies[min(len(latencies) - 1, max(0, int(q * len(latencies) + 0.999999) - 1))]
    return {"replies": len(results), "p50_ms": round(rank(0.50), 1), "p99_ms": round(rank(0.99), 1),
            "max_ms": round(latencies[-1], 1), "async_fallbacks": sum(1 for _, fell in results if fell)}


def burst(count):
    """`count` customers write once each; every callback must answer 200."""
    base = int(time.time() * 1000) * 100
    answered = 0
    for i in range(count):
        status, reply, _ = send(f"o-burst-{i}", base + i, QUESTIONS[i % len(QUESTIONS)], i % 2 == 1)
        assert status == 200, (status, reply)
        answered += 1
    return {"sent": answered}


def wecom(doorbells):
    """The URL check, then `doorbells` doorbells (tokens of varied lengths, so
    paddings of every size occur); kefu must answer each with success."""
    crypto = WeComCrypto(TOKEN, AES_KEY, APP_ID)
    summary = {"url_checks": 0, "doorbells": 0, "long_padding": 0, "forged_refused": 0}
    timestamp, n, echo = str(int(time.time())), nonce(), "echo-" + nonce()
    envelope = xmltodict.parse(crypto.encrypt_message(echo, n, timestamp))["xml"]
    status, body = request("GET", {"msg_signature": envelope["MsgSignature"], "timestamp": timestamp, "nonce": n,
                                   "echostr": envelope["Encrypt"]})
    assert (status, body) == (200, echo), (status, body)
    summary["url_checks"] += 1
    for i in range(doorbells):
        event = (f"<xml><ToUserName><![CDATA[{APP_ID}]]></ToUserName><CreateTime>{int(time.time())}</CreateTime>"
                 f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
                 f"<Token><![CDATA[ENC{'x' * i}]]></Token><OpenKfId><![CDATA[wk-test]]></OpenKfId></xml>")
        timestamp, n = str(int(time.time())), nonce()
        sealed = crypto.encrypt_message(event, n, timestamp)
        signature_of = xmltodict.parse(sealed)["xml"]["MsgSignature"]
        status, body = request("POST", {"msg_signature": signature_of, "timestamp": timestamp, "nonce": n}, sealed)
        assert (status, body) == (200, "success"), (status, body)
        summary["doorbells"] += 1
        length = 16 + 4 + len(event.encode()) + len(APP_ID)
        summary["long_padding"] += int(32 - length % 32 > 16)
    status, _ = request("POST", {"msg_signature": "0" * 40, "timestamp": timestamp, "nonce": n}, sealed)
    summary["forged_refused"] = int(status == 403)
    return summary


if COMMAND == "roundtrip":
    print(json.dumps(roundtrip()))
elif COMMAND == "load":
    print(json.dumps(load(int(ARGS[0]), int(ARGS[1]))))
elif COMMAND == "wecom":
    print(json.dumps(wecom(int(ARGS[0]))))
elif COMMAND == "burst":
    print(json.dumps(burst(int(ARGS[0]))))
else:
    sys.exit(f"unknown command {COMMAND}")
