"""Operations' pure parts: the supervisor's backoff and crash-loop limit, the local Kafka
cluster's layout, the restore check, the front door's configuration, readiness of a
standby, instance ports."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deploy import backup, frontdoor, stack
from deploy.brokers import LocalKafka, adopt
from deploy.supervisor import Policy, Record, after_restart, on_exit
from shared.positions import LogState, StoredPosition
from shared.service import _add_readiness
from shared.settings import Settings

POLICY = Policy(first_delay=1, max_delay=30, stable_after=60, burst=5, window=600)


# --- supervisor ------------------------------------------------------------------------------


def test_restarts_back_off_doubling_up_to_the_cap() -> None:
    record, now, delays = Record(), 1000.0, []
    for _ in range(4):
        decision = on_exit(record, now, POLICY)
        assert decision.action == "restart"
        delays.append(decision.at - now)
        now = decision.at
        record = after_restart(record, now, POLICY)
        now += 1  # exits a second later: a quick crash
        record.last_exit = now
    assert delays == [1, 2, 4, 8]
    capped = on_exit(Record(failures=10, last_restart=now, last_exit=now), now,
                     Policy(burst=100))
    assert capped.at - now == 30


def test_a_crash_loop_is_given_up_and_a_stable_run_starts_afresh() -> None:
    now = 10_000.0
    looping = Record(restarts=5, recent=[now - 500, now - 400, now - 300, now - 200, now - 100],
                     failures=5, last_restart=now - 100, last_exit=now)
    decision = on_exit(looping, now, POLICY)
    assert decision.action == "give_up" and "5 restarts" in decision.reason
    # The same five restarts, but the oldest outside the window: restarted.
    spread = Record(restarts=5, recent=[now - 700, now - 400, now - 300, now - 200, now - 100],
                    failures=5, last_restart=now - 100, last_exit=now)
    assert on_exit(spread, now, POLICY).action == "restart"
    # Up for longer than stable_after before it exited: the backoff starts again at 1 s.
    stable = Record(restarts=3, recent=[now - 300], failures=3, last_restart=now - 300,
                    last_exit=now)
    assert on_exit(stable, now, POLICY).at - now == 1
    assert after_restart(stable, now + 1, POLICY).failures == 1


# --- the local Kafka cluster -----------------------------------------------------------------


def test_one_node_keeps_its_folder_and_three_have_their_own(tmp_path: Path) -> None:
    one = LocalKafka(tmp_path, 9092, 1)
    assert [(n.id, n.port, n.folder) for n in one.nodes] == [(1, 9092, tmp_path)]
    assert one.bootstrap == "127.0.0.1:9092"
    assert (one.replication_factor, one.min_insync_replicas) == (1, 1)
    three = LocalKafka(tmp_path, 9092, 3)
    assert [n.port for n in three.nodes] == [9092, 9102, 9112]
    assert three.nodes[2].folder == tmp_path / "nodes-3" / "3"
    assert three.bootstrap == "127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112"
    assert (three.replication_factor, three.min_insync_replicas) == (3, 2)
    assert three.nodes[1].pid() is None  # no pid file: not running


def test_the_command_line_adopts_the_local_cluster_but_not_another(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("3\n")
    env = {"XINYONG_KAFKA_PORT": "9392", "XINYONG_KAFKA_BOOTSTRAP": "127.0.0.1:9392"}
    assert adopt(settings, env).brokers == 3
    assert env["XINYONG_KAFKA_BOOTSTRAP"].split(",") == [
        "127.0.0.1:9392", "127.0.0.1:9402", "127.0.0.1:9412"]
    assert env["XINYONG_KAFKA_REPLICATION_FACTOR"] == "3"
    assert env["XINYONG_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    elsewhere = {"XINYONG_KAFKA_PORT": "9392", "XINYONG_KAFKA_BOOTSTRAP": "kafka.example:9093"}
    adopt(settings, elsewhere)
    assert elsewhere == {"XINYONG_KAFKA_PORT": "9392",
                         "XINYONG_KAFKA_BOOTSTRAP": "kafka.example:9093"}
    chosen = {"XINYONG_KAFKA_PORT": "9392", "XINYONG_KAFKA_REPLICATION_FACTOR": "2"}
    adopt(settings, chosen)
    assert chosen["XINYONG_KAFKA_REPLICATION_FACTOR"] == "2"
    with pytest.raises(ValueError, match="min_insync"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)


# --- restore ---------------------------------------------------------------------------------

COPY = """--
-- Data for Name: consumed_positions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.consumed_positions (topic, partition, next_offset, cluster_id, topic_id, """ \
    """checked_at) FROM stdin;
credit.records.accepted\t0\t120\tC1\tT1\t2026-11-29 10:00:00+00
credit.records.accepted\t1\t7\t\\N\t\\N\t\\N
\\.
"""


def test_a_dumps_positions_are_read_from_its_copy_data() -> None:
    assert backup.parse_copy_positions(COPY) == {
        ("credit.records.accepted", 0): StoredPosition(120, "C1", "T1"),
        ("credit.records.accepted", 1): StoredPosition(7, None, None)}


def test_a_dump_is_refused_when_the_log_no_longer_holds_what_it_would_replay() -> None:
    stored = backup.parse_copy_positions(COPY)
    fine = {("credit.records.accepted", 0): LogState("C1", "T1", 0, 300, 280),
            ("credit.records.accepted", 1): LogState("C1", "T1", 0, 50, 50),
            ("credit.records.status", 0): LogState("C1", "T2", 0, 9, 9)}
    checks = backup.check(stored, fine)
    assert [c.verdict.start for c in checks] == [120, 7, 0]
    assert backup.refusal(checks, Path("registry.dump"), None, {}) is None

    retained = {**fine, ("credit.records.accepted", 0): LogState("C1", "T1", 200, 300, 280)}
    reason = backup.refusal(backup.check(stored, retained), Path("registry.dump"), None,
                            {"credit.records.accepted": 168.0})
    assert reason is not None and "refused: 1 partition(s)" in reason
    assert "credit.records.accepted[0]" in reason and "log starts at 200" in reason
    assert "credit.records.accepted 168 h" in reason
    # Another cluster whose log starts at 0 is replayed, not refused.
    moved = {k: LogState("C2", v.topic_id, 0, v.log_end, None) for k, v in fine.items()}
    assert backup.refusal(backup.check(stored, moved), Path("x.dump"), None, {}) is None


# --- the front door --------------------------------------------------------------------------


def test_the_front_door_listens_once_per_group_in_front_of_every_process() -> None:
    settings = Settings(trusted_proxies="127.0.0.2")
    text = frontdoor.local_config(settings, Path("/tmp/door"), {"publisher": 2})
    listens = re.findall(r"listen 127\.0\.0\.1:(\d+);", text)
    assert sorted(map(int, listens)) == [8080, 8081, 8082, 8083]
    step = stack.INSTANCE_PORT_STEP
    publisher = text.split("upstream xinyong_publisher {")[1].split("}")[0]
    assert "127.0.0.1:8000 " in publisher and f"127.0.0.1:{8000 + step} " in publisher
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert f"proxy_bind {frontdoor.SOURCE_ADDRESS};" in text
    assert text.count("location = /readyz { return 404; }") == 4
    objection = text.split("listen 127.0.0.1:8083;")[1].split("server {")[0]
    assert "client_max_body_size 64k;" in objection
    ingest = text.split("listen 127.0.0.1:8081;")[1].split("server {")[0]
    assert "client_max_body_size 20m;" in ingest and "proxy_read_timeout 120s;" in ingest
    operator = text.split("listen 127.0.0.1:8082;")[1]
    assert "location ~ ^/api/v1/records/[^/]+/[^/]+/submissions$" in operator
    assert "proxy_pass http://xinyong_registry;" in operator
    # City statistics are the stats service's, behind the public and the operators' doors;
    # what-if is the publisher's.
    public = text.split("listen 127.0.0.1:8080;")[1].split("server {")[0]
    assert "location ^~ /api/v1/stats/ {\n            proxy_pass http://xinyong_stats;" in public
    assert ("location ^~ /api/v1/scorecards {\n            proxy_pass http://xinyong_stats;"
            in operator)
    assert ("location ^~ /api/v1/what-if {\n            proxy_pass http://xinyong_publisher;"
            in operator)
    assert "'{\"type\":\"about:blank\"" in text and "application/problem+json" in text


def test_services_behind_the_local_door_trust_it_alone(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    monkeypatch.delenv("XINYONG_TRUSTED_PROXIES", raising=False)
    monkeypatch.delenv("XINYONG_OBJECTION_PUBLIC_URL", raising=False)
    env = frontdoor.service_env(Settings())
    assert env == {"XINYONG_TRUSTED_PROXIES": "127.0.0.2",
                   "XINYONG_OBJECTION_PUBLIC_URL": "http://127.0.0.1:8083"}
    monkeypatch.setenv("XINYONG_TRUSTED_PROXIES", "10.0.0.1")
    assert "XINYONG_TRUSTED_PROXIES" not in frontdoor.service_env(Settings())


# --- readiness and instances -----------------------------------------------------------------


def _readyz(**state: object) -> tuple[int, dict[str, object]]:
    worker = SimpleNamespace(assigned=set(), **state)
    worker.positions_state = lambda: {"unchecked": state.get("unchecked_n", 0),
                                      "paused": state.get("paused", [])}
    app = FastAPI()
    _add_readiness(app, worker)  # type: ignore[arg-type]
    r = TestClient(app).get("/readyz")
    return r.status_code, r.json()


def test_a_standby_with_no_partitions_is_ready_once_it_has_joined() -> None:
    assert _readyz(joined=True)[0] == 200
    status, body = _readyz(joined=False)
    assert status == 503 and body["assigned_partitions"] == 0
    assert _readyz(joined=True, unchecked_n=2)[0] == 503
    assert _readyz(joined=True, paused=[{"topic": "t", "partition": 0, "why": "gap"}])[0] == 503


def test_instances_have_ports_and_files_of_their_own(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    folder = stack.run_dir(settings)
    first = stack.ServiceProcess("ingest", settings, folder)
    second = stack.ServiceProcess("ingest", settings, folder, instance=2)
    assert (first.http_port, first.metrics_port) == (8001, 9401)
    step = stack.INSTANCE_PORT_STEP
    assert (second.http_port, second.metrics_port) == (8001 + step, 9401 + step)
    assert second.instance_env() == {"XINYONG_INGEST_HTTP_PORT": str(8001 + step),
                                     "XINYONG_INGEST_METRICS_PORT": str(9401 + step)}
    assert first.instance_env() == {}
    assert (first.pid_file.name, second.pid_file.name) == ("ingest.pid", "ingest-2.pid")
    assert stack.wanted(settings) == []
    second._want()
    assert [(p.name, p.instance, p.command) for p in stack.wanted(settings)] == [
        ("ingest", 2, ())]
    assert [p.instance for p in stack.instances(settings, ["ingest"])] == [1, 2]
    assert second.pid() is None
