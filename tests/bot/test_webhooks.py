"""CRM webhooks ([webhook], off by default): an amoCRM or Bitrix24 call to /crm-webhook/<token>
is answered at once and makes ONE sync soon (bursts coalesce, a call during a sync queues at most
one more); a wrong token is a plain 404 and never reaches the log; bad bodies are refused."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from bot.app import serve
from bot.config import ConfigError, parse_config
from bot.webhooks import BadCall, SyncTrigger, WebhookEndpoint, WebhookServer, parse_call, webhook_problems
from crm.load import load_crm
from tests.bot.conftest import CONFIG_TOML
from tests.channels.conftest import free_port, wait_for
from tests.fakes.amocrm_server import FakeAmoCRM, ThreadedServer

TOKEN = "hook-Tok3n-0123456789abcdef"
APP_TOKEN = "b24-app-token-7f3a9c"
AMO_BODY = ("leads[update][0][id]=6&leads[update][0][name]=%D0%A1%D0%B4%D0%B5%D0%BB%D0%BA%D0%B0&"
            "leads[update][0][status_id]=11&leads[status][0][id]=6&leads[status][0][old_status_id]=10&"
            "account[subdomain]=demo&account[id]=5135160")
BITRIX_BODY = ("event=ONCRMDEALUPDATE&event_handler_id=7&data[FIELDS][ID]=42&ts=1790000000&"
               "auth[domain]=demo.bitrix24.ru&auth[client_endpoint]=https%3A%2F%2Fdemo.bitrix24.ru%2Frest%2F&"
               f"auth[member_id]=abc123&auth[application_token]={APP_TOKEN}")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- config -------------------------------------------------------------------------------------

def test_webhooks_are_off_by_default_and_need_a_crm_that_calls_them(monkeypatch):
    cfg = parse_config("")
    assert cfg.webhook.enabled is False and (cfg.webhook.host, cfg.webhook.port) == ("127.0.0.1", 9465)
    assert webhook_problems(cfg) == []
    with pytest.raises(ConfigError) as e:
        parse_config("[webhook]\nenabled = true\n")
    assert "webhook.enabled" in str(e.value) and "'files'" in str(e.value) and "amocrm" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config(f'[webhook]\ntoken_env = "{TOKEN}"\n')  # the secret itself where its NAME belongs
    assert "webhook.token_env" in str(e.value) and TOKEN not in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config("[webhook]\ndebounce_secnds = 3\n")
    assert "did you mean `debounce_seconds`" in str(e.value)

    hook = parse_config('[source]\nkind = "bitrix24"\nwebhook_env = "B24"\n[webhook]\nenabled = true\n'
                        'token_env = "HOOK_TOKEN"\n')
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    assert "HOOK_TOKEN is not set" in webhook_problems(hook)[0]
    monkeypatch.setenv("HOOK_TOKEN", "short")
    assert "16 to 200 letters" in webhook_problems(hook)[0] and "short" not in webhook_problems(hook)[0]
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    assert webhook_problems(hook) == []


# -- the call's shape (pure) -------------------------------------------------------------------

def test_amocrm_and_bitrix24_calls_are_read_and_bad_ones_refused_with_why():
    amo = parse_call("amocrm", AMO_BODY.encode())
    assert amo.changes == {"leads update": 1, "leads status": 1}
    b24 = parse_call("bitrix24", BITRIX_BODY.encode())
    assert b24.changes == {"ONCRMDEALUPDATE": 1} and b24.application_token == APP_TOKEN
    bad = {
        ("amocrm", b""): "empty",
        ("amocrm", b'{"leads": {"update": [{"id": 6}]}}'): "not form-encoded",
        ("amocrm", b"\xff\xfe"): "not UTF-8",
        ("amocrm", b"account[subdomain]=demo"): "no field like `leads[update][0][id]`",
        ("amocrm", b"leads[add][0][id]=abc"): "must be a record id",
        ("amocrm", BITRIX_BODY.encode()): "Bitrix24 call, but [source] kind is amocrm",
        ("bitrix24", AMO_BODY.encode()): "`event` field is missing",
        ("bitrix24", b"event=ONCRMDEALUPDATE"): "data[FIELDS][ID]",
        ("bitrix24", b"event=drop%20table&data[FIELDS][ID]=1"): "Bitrix24 event name",
    }
    for (kind, body), why in bad.items():
        with pytest.raises(BadCall) as e:
            parse_call(kind, body)
        assert why in str(e.value) and e.value.status == 400, (kind, body)


# -- debounce -----------------------------------------------------------------------------------

class Job:
    """A sync stand-in that counts its runs and can take a while."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.started = 0
        self.finished = 0

    async def __call__(self) -> str:
        self.started += 1
        await asyncio.sleep(self.seconds)
        self.finished += 1
        return "Sync done"


async def test_a_burst_makes_one_run_and_calls_during_a_run_make_at_most_one_more():
    job = Job(seconds=0.6)
    trigger = SyncTrigger(job, delay=0.1)
    assert [trigger.poke() for _ in range(30)] == ["scheduled"] + ["coalesced"] * 29
    await wait_for(lambda: job.started == 1)
    assert [trigger.poke() for _ in range(5)] == ["queued"] + ["coalesced"] * 4  # while the first runs
    await wait_for(lambda: job.finished == 2, timeout=5)
    await asyncio.sleep(0.5)
    assert job.started == 2 and trigger.runs == 2
    assert trigger.poke() == "scheduled"  # quiet again: the next call starts a new round
    await wait_for(lambda: job.finished == 3, timeout=5)
    await trigger.close()


async def test_runs_start_at_least_the_minimum_interval_apart():
    """A CRM whose leads change every few seconds: pokes keep coming, runs stay `min_gap` apart
    (and the pokes meanwhile share the next run)."""
    job = Job(seconds=0.05)
    trigger = SyncTrigger(job, delay=0.0, min_gap=0.8)
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    real = job.__call__

    async def timed() -> str:
        starts.append(loop.time())
        return await real()
    trigger.job = timed
    end = loop.time() + 2.0
    while loop.time() < end:  # a poke every 50 ms for 2 s: 40 pokes
        trigger.poke()
        await asyncio.sleep(0.05)
    await wait_for(lambda: not trigger._running and (trigger._task is None or trigger._task.done()), timeout=5)
    assert 2 <= len(starts) <= 4, starts
    assert all(b - a >= 0.79 for a, b in zip(starts, starts[1:])), starts
    await trigger.close()


async def test_a_failing_run_does_not_stop_later_webhooks(caplog):
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise RuntimeError("store locked")
    trigger = SyncTrigger(broken, delay=0)
    trigger.poke()
    await wait_for(lambda: trigger.runs == 1)
    trigger.poke()
    await wait_for(lambda: trigger.runs == 2)
    assert len(calls) == 2 and "the sync a webhook asked for failed" in caplog.text


# -- through real HTTP on 127.0.0.1 -------------------------------------------------------------

async def post(port: int, path: str, body: bytes | str, headers: dict | None = None,
               method: str = "POST") -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"http://127.0.0.1:{port}{path}", data=body,
                                headers=headers or FORM) as r:
            return r.status, await r.text()


@pytest.fixture
async def hook_server():
    """A WebhookServer on a free port running a counting job; yields a factory (kind, app token)."""
    servers: list[tuple[WebhookServer, WebhookEndpoint]] = []

    async def start(kind: str = "amocrm", *, app_token: str | None = None, seconds: float = 0.0,
                    delay: float = 0.2, max_body: int = 4096) -> tuple[int, Job, WebhookEndpoint]:
        job = Job(seconds)
        endpoint = WebhookEndpoint(kind, TOKEN, SyncTrigger(job, delay), application_token=app_token,
                                   max_body=max_body)
        port = free_port()
        server = WebhookServer("127.0.0.1", port, [endpoint.add_to])
        await server.start()
        servers.append((server, endpoint))
        return port, job, endpoint
    yield start
    for server, endpoint in servers:
        await endpoint.trigger.close()
        await server.stop()


async def test_an_amocrm_call_is_answered_at_once_and_syncs_once(hook_server, caplog):
    caplog.set_level(logging.DEBUG)
    port, job, _ = await hook_server("amocrm", delay=0.3)
    status, body = await post(port, f"/crm-webhook/{TOKEN}", AMO_BODY)
    assert status == 200 and '"sync": "scheduled"' in body
    assert job.started == 0  # answered before the sync: amoCRM wants an answer within 2 s
    await wait_for(lambda: job.finished == 1)
    await asyncio.sleep(0.5)
    assert job.started == 1
    assert "webhook from amocrm (leads status x1, leads update x1)" in caplog.text
    assert TOKEN not in caplog.text


async def test_a_burst_of_bitrix24_calls_makes_one_sync(hook_server, caplog):
    caplog.set_level(logging.DEBUG)
    port, job, _ = await hook_server("bitrix24", app_token=APP_TOKEN, delay=0.3)
    answers = await asyncio.gather(*(post(port, f"/crm-webhook/{TOKEN}", BITRIX_BODY) for _ in range(25)))
    assert {a[0] for a in answers} == {200}
    assert sum('"scheduled"' in a[1] for a in answers) == 1
    await wait_for(lambda: job.finished == 1)
    await asyncio.sleep(0.6)
    assert job.started == 1
    assert TOKEN not in caplog.text and APP_TOKEN not in caplog.text


async def test_calls_during_a_slow_sync_make_exactly_one_more(hook_server):
    port, job, _ = await hook_server("amocrm", seconds=1.5, delay=0.1)
    assert (await post(port, f"/crm-webhook/{TOKEN}", AMO_BODY))[0] == 200
    await wait_for(lambda: job.started == 1)
    answers = [await post(port, f"/crm-webhook/{TOKEN}", AMO_BODY) for _ in range(10)]
    assert '"queued"' in answers[0][1] and all('"coalesced"' in a[1] for a in answers[1:])
    await wait_for(lambda: job.finished == 2, timeout=5)
    await asyncio.sleep(0.4)
    assert job.started == 2


async def test_a_wrong_token_is_a_plain_404_and_never_logged(hook_server, caplog):
    caplog.set_level(logging.DEBUG)
    port, job, _ = await hook_server("amocrm", delay=0)
    wrong = TOKEN[:-1] + "X"
    for path in (f"/crm-webhook/{wrong}", "/crm-webhook/", f"/crm-webhook/{TOKEN}/extra"):
        status, body = await post(port, path, AMO_BODY)
        assert status == 404, path
    unknown = await post(port, "/no-such-page", AMO_BODY)
    assert unknown[0] == 404 and body == unknown[1]  # the same answer as any unknown page
    assert (await post(port, f"/crm-webhook/{wrong}", "", method="GET"))[0] == 404  # no 405 hint either
    assert (await post(port, f"/crm-webhook/{TOKEN}", "", method="GET"))[0] == 405
    await asyncio.sleep(0.2)
    assert job.started == 0
    assert "wrong token" in caplog.text
    assert wrong not in caplog.text and TOKEN not in caplog.text


async def test_bad_large_and_unauthorised_calls_are_refused_and_sync_nothing(hook_server):
    port, job, _ = await hook_server("bitrix24", app_token=APP_TOKEN, delay=0, max_body=2048)
    url = f"/crm-webhook/{TOKEN}"
    status, body = await post(port, url, "event=ONCRMDEALUPDATE")
    assert status == 400 and "data[FIELDS][ID]" in body
    status, body = await post(port, url, AMO_BODY)
    assert status == 400 and "`event` field is missing" in body
    status, body = await post(port, url, BITRIX_BODY.replace(APP_TOKEN, "forged-token-000"))
    assert status == 403 and "application_token" in body and APP_TOKEN not in body
    status, _ = await post(port, url, BITRIX_BODY + "&pad=" + "x" * 5000)
    assert status == 413

    async def chunks():  # no Content-Length: the limit holds on what is read
        for _ in range(10):
            yield b"x" * 1000
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}{url}", data=chunks(), headers=FORM) as r:
            assert r.status == 413
    await asyncio.sleep(0.2)
    assert job.started == 0
    assert (await post(port, url, BITRIX_BODY))[0] == 200
    await wait_for(lambda: job.finished == 1)


# -- the running bot: a real incremental sync through a fake amoCRM ------------------------------

T0 = 1_790_000_000


def _lead(i: int, at: int) -> dict:
    return {"id": i, "name": f"Сделка {i}", "price": 1000, "responsible_user_id": 1, "status_id": 10,
            "pipeline_id": 1, "created_at": at, "updated_at": at, "closed_at": None}


@pytest.fixture
def amo(monkeypatch):
    server = FakeAmoCRM()
    server.add_pipeline(1, "Продажи", [(10, "Новая"), (11, "КП")])
    server.add_user(1, "Анна", "anna@example.kz")
    for i in range(1, 4):
        server.put_lead(_lead(i, T0 + i * 3600))
    monkeypatch.setenv("HOOK_AMO_TOKEN", server.long_lived)
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    with ThreadedServer(server) as running:
        yield running


def _bot_config(amo: FakeAmoCRM, tmp_path: Path, hook: str, metrics: str = "") -> object:
    quiet_free = CONFIG_TOML.replace('quiet_hours = "21:00-08:00"\n', "")
    return parse_config(quiet_free + f"""
[source]
kind = "amocrm"
base_url = "http://127.0.0.1:{amo.port}"
token_env = "HOOK_AMO_TOKEN"
store = "store"
requests_per_second = 100
[state]
url = "sqlite:///{tmp_path / 's.db'}"
[telegram]
enabled = true
[webhook]
enabled = true
token_env = "HOOK_TOKEN"
debounce_seconds = 0.3
min_interval_seconds = 0
{hook}
{metrics}
""", base_dir=tmp_path)


async def test_the_running_bot_syncs_a_new_lead_then_scans_after_one_amocrm_call(amo, tmp_path, fake_channel,
                                                                                   caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    cfg = _bot_config(amo, tmp_path, f"port = {port}")
    scans: list[int] = []

    def scan(c, now):  # the scan after the sync reads the synced store, as a scheduled scan does
        data = load_crm(c.source, base_dir=c.base_dir).data
        scans.append(len(data.deals))
        from types import SimpleNamespace
        return SimpleNamespace(insights=[], data=data, skipped={})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")},
                                     start_scan=False, catch_up=False, scan_fn=scan))
    try:
        await wait_for(lambda: "webhook on http://127.0.0.1" in caplog.text, timeout=15)
        amo.put_lead(_lead(4, T0 + 5 * 86400))  # a new lead in the CRM
        before = len(amo.api_calls("leads"))
        answers = [await post(port, f"/crm-webhook/{TOKEN}", AMO_BODY.replace("=6", "=4")) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        await wait_for(lambda: scans == [4], timeout=20)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert scans == [4]  # one sync + scan for the three calls, and it saw the new lead
    assert len(amo.api_calls("leads")) > before
    assert "4" in set(load_crm(cfg.source, base_dir=tmp_path).data.deals.deal_id)
    assert TOKEN not in caplog.text


async def test_webhooks_can_share_the_metrics_port_and_sync_only(amo, tmp_path, fake_channel, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    cfg = _bot_config(amo, tmp_path, f"port = {port}\nscan = false", f"[metrics]\nenabled = true\nport = {port}")
    scans: list[int] = []
    stop = asyncio.Event()
    task = asyncio.create_task(serve(cfg, stop=stop, channels={"telegram": fake_channel("telegram")},
                                     start_scan=False, catch_up=False, scan_fn=lambda c, now: scans.append(1)))
    try:
        await wait_for(lambda: "CRM webhooks on /crm-webhook/<token>" in caplog.text, timeout=15)
        assert (await post(port, f"/crm-webhook/{TOKEN}", AMO_BODY))[0] == 200
        assert (await post(port, "/crm-webhook/not-the-token-0123456789", AMO_BODY))[0] == 404
        assert (await post(port, f"/crm-webhook/{TOKEN}", "x=1"))[0] == 400
        page = ""

        async def synced() -> bool:
            nonlocal page
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    page = await r.text()
                    return 'crm_pulse_syncs_total{outcome="ok"} 1.0' in page
        deadline = asyncio.get_running_loop().time() + 20
        while not await synced():
            assert asyncio.get_running_loop().time() < deadline, "the webhook's sync never ran"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert scans == []  # scan = false: the sync alone, as the scheduled sync job does
    for outcome in ("accepted", "refused", "wrong_token"):
        assert f'crm_pulse_webhook_calls_total{{outcome="{outcome}"}} 1.0' in page
    assert TOKEN not in caplog.text


def test_run_refuses_to_start_without_a_usable_token_and_masks_it(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from bot.app import run
    from bot.logsafe import config_secret_values

    (tmp_path / "config.toml").write_text(
        '[source]\nkind = "bitrix24"\nwebhook_env = "HOOK_B24"\n[telegram]\nenabled = true\ntoken_env = "HOOK_TG"\n'
        f'[state]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[webhook]\nenabled = true\ntoken_env = "HOOK_TOKEN"\n'
        'application_token_env = "HOOK_APP"\n', encoding="utf-8")
    monkeypatch.setenv("HOOK_B24", "https://demo.bitrix24.ru/rest/1/abcdef123456/")
    monkeypatch.setenv("HOOK_TG", "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8")
    monkeypatch.setenv("HOOK_TOKEN", "tooshort")
    monkeypatch.setenv("HOOK_APP", APP_TOKEN)
    assert run(SimpleNamespace(config=str(tmp_path / "config.toml"), log_level="INFO")) == 2
    err = capsys.readouterr().err
    assert "webhook.token_env" in err and "16 to 200 letters" in err and "tooshort" not in err
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    cfg = parse_config((tmp_path / "config.toml").read_text(encoding="utf-8"))
    assert {TOKEN, APP_TOKEN} <= set(config_secret_values(cfg))  # masked in every log line once registered
