"""Drives herm's Claude Managed Agents API with Anthropic's official Python SDK (pinned).

  cma_sdk.py SCENARIO   with HERM_BASE (…/anthropic) and HERM_KEY in the environment

Each scenario asserts what an app written for CMA relies on and prints one JSON line of
facts for the Rust test (ids, counts) to check against the fake model and the server.
"""

import json
import os
import sys
import threading
import time

import anthropic
from anthropic.lib.sessions import accumulate_managed_agents_event

BASE = os.environ["HERM_BASE"]
KEY = os.environ["HERM_KEY"]
client = anthropic.Anthropic(base_url=BASE, api_key=KEY)
PREVIEWS = ("event_start", "event_delta")


class Tap:
    """A session stream read on a thread, so the test can wait for events with a deadline."""

    def __init__(self, session_id, deltas=True):
        self.events = []
        self.error = None
        self.cv = threading.Condition()
        kw = {"event_deltas": ["agent.message"]} if deltas else {}
        self.stream = client.beta.sessions.events.stream(session_id, **kw)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for e in self.stream:
                with self.cv:
                    self.events.append(e)
                    self.cv.notify_all()
        except Exception as ex:  # noqa: BLE001 (reported by wait)
            with self.cv:
                self.error = ex
                self.cv.notify_all()

    def wait(self, pred, n=1, timeout=60):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                hits = [e for e in self.events if pred(e)]
                if len(hits) >= n:
                    return hits[n - 1]
                left = deadline - time.time()
                if left <= 0 or self.error is not None:
                    raise AssertionError(f"waited for {n} matching events; got {self.types(True)} error={self.error!r}")
                self.cv.wait(left)

    def idle(self, n=1, timeout=60):
        return self.wait(lambda e: e.type == "session.status_idle", n, timeout)

    def types(self, previews=False):
        return [e.type for e in self.events if previews or e.type not in PREVIEWS]

    def final(self):
        return [e for e in self.events if e.type not in PREVIEWS]

    def close(self):
        self.stream.close()


def message(text):
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def setup(tools=None, system="You are careful.", **agent_kw):
    env = client.beta.environments.create(name="env")
    toolset = [{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}]}]
    agent = client.beta.agents.create(
        name="agent", model="claude-sonnet-4-5", system=system, tools=toolset if tools is None else tools, **agent_kw
    )
    return env, agent


def listed(session_id, **kw):
    return list(client.beta.sessions.events.list(session_id, **kw))


def same_ids_as_list(tap, session_id):
    ids = [e.id for e in tap.final()]
    assert ids == [e.id for e in listed(session_id)], (ids, [e.id for e in listed(session_id)])
    assert len(set(ids)) == len(ids), "ids are unique"
    return ids


def approve():
    env, agent = setup()
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, title="approve")
    assert s.status == "idle" and s.agent.version == 1 and s.agent.id == agent.id, s
    tap = Tap(s.id)
    sent = client.beta.sessions.events.send(s.id, events=[message("scenario approve")])
    assert sent.data[0].type == "user.message", sent
    first = tap.idle()
    assert first.stop_reason.type == "requires_action", first
    (use_id,) = first.stop_reason.event_ids
    use = next(e for e in tap.final() if e.id == use_id)
    assert use.type == "agent.tool_use" and use.name == "bash", use
    assert use.input == {"command": "echo approved-output"}, use.input
    assert use.evaluated_permission == "ask", use
    r = client.beta.sessions.events.send(
        s.id, events=[{"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "allow"}]
    )
    assert r.data[0].type == "user.tool_confirmation" and r.data[0].tool_use_id == use_id, r
    done = tap.idle(2)
    assert done.stop_reason.type == "end_turn", done
    want = [
        "user.message", "session.status_running", "span.model_request_start", "agent.message",
        "span.model_request_end", "agent.tool_use", "session.status_idle", "user.tool_confirmation",
        "session.status_running", "agent.tool_result", "span.model_request_start", "agent.message",
        "span.model_request_end", "session.status_idle",
    ]
    assert tap.types() == want, tap.types()
    result = next(e for e in tap.events if e.type == "agent.tool_result")
    assert result.tool_use_id == use_id and not result.is_error, result
    assert "approved-output" in result.content[0].text, result
    # The previews carry the id of the message they build and fold into its text.
    messages = [e for e in tap.events if e.type == "agent.message"]
    for m in messages:
        acc = None
        for e in tap.events:
            if e.type in PREVIEWS and (getattr(e, "event_id", None) == m.id or getattr(getattr(e, "event", None), "id", None) == m.id):
                acc = accumulate_managed_agents_event(acc, e)
        assert acc is not None, f"no preview for {m.id}"
        assert acc.content[0].text == m.content[0].text, (acc, m)
    start = next(e for e in tap.events if e.type == "span.model_request_start")
    end = next(e for e in tap.events if e.type == "span.model_request_end")
    assert end.model_request_start_id == start.id and end.model_usage.input_tokens > 0, end
    ids = same_ids_as_list(tap, s.id)
    got = client.beta.sessions.retrieve(s.id)
    assert got.status == "idle" and got.usage.input_tokens > 0, got
    archived = client.beta.sessions.archive(s.id)
    assert archived.archived_at is not None, archived
    try:
        client.beta.sessions.events.send(s.id, events=[message("more")])
        raise AssertionError("an archived session took a message")
    except anthropic.BadRequestError as e:
        assert "archived" in str(e), e
    tap.close()
    return {"session": s.id, "events": len(ids)}


def deny():
    env, agent = setup()
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario deny")])
    (use_id,) = tap.idle().stop_reason.event_ids
    client.beta.sessions.events.send(
        s.id,
        events=[{"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "deny", "deny_message": "not today"}],
    )
    assert tap.idle(2).stop_reason.type == "end_turn"
    conf = next(e for e in tap.events if e.type == "user.tool_confirmation")
    assert conf.result == "deny" and conf.deny_message == "not today", conf
    result = next(e for e in tap.events if e.type == "agent.tool_result")
    assert result.tool_use_id == use_id and result.is_error, result
    assert not any(e.type in PREVIEWS for e in tap.events), "no previews unless asked"
    # A second answer to the same call is refused, without retries.
    t = time.time()
    try:
        client.beta.sessions.events.send(
            s.id, events=[{"type": "user.tool_confirmation", "tool_use_id": use_id, "result": "allow"}]
        )
        raise AssertionError("a second confirmation was taken")
    except (anthropic.ConflictError, anthropic.BadRequestError):
        assert time.time() - t < 0.45, "a non-transient error is not retried"
    same_ids_as_list(tap, s.id)
    tap.close()
    return {"session": s.id}


def interrupt():
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id)
    client.beta.sessions.events.send(s.id, events=[message("scenario interrupt")])
    tap.wait(lambda e: e.type == "event_delta")
    r = client.beta.sessions.events.send(s.id, events=[{"type": "user.interrupt"}])
    assert r.data[0].type == "user.interrupt", r
    idle = tap.idle()
    assert idle.stop_reason.type == "end_turn", idle
    assert "user.interrupt" in tap.types(), tap.types()
    assert "agent.message" not in tap.types(), "the interrupted message never completed"
    same_ids_as_list(tap, s.id)
    tap.close()
    return {"session": s.id}


def question():
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id)
    client.beta.sessions.events.send(s.id, events=[message("scenario question")])
    idle = tap.idle()
    (use_id,) = idle.stop_reason.event_ids
    use = next(e for e in tap.final() if e.id == use_id)
    assert use.type == "agent.custom_tool_use" and use.name == "ask_user", use
    assert use.input["question"] == "Which color?", use.input
    client.beta.sessions.events.send(
        s.id,
        events=[{"type": "user.custom_tool_result", "custom_tool_use_id": use_id, "content": [{"type": "text", "text": "blue"}]}],
    )
    assert tap.idle(2).stop_reason.type == "end_turn"
    echo = next(e for e in tap.events if e.type == "user.custom_tool_result")
    assert echo.custom_tool_use_id == use_id, echo
    assert tap.types()[-3:] == ["agent.message", "span.model_request_end", "session.status_idle"], tap.types()
    same_ids_as_list(tap, s.id)
    tap.close()
    return {"session": s.id}


def error():
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id)
    client.beta.sessions.events.send(s.id, events=[message("scenario error")])
    idle = tap.idle()
    assert idle.stop_reason.type == "retries_exhausted", idle
    err = next(e for e in tap.events if e.type == "session.error")
    assert err.error.type == "model_request_failed_error", err
    assert err.error.retry_status.type == "exhausted", err
    assert tap.types()[-2:] == ["session.error", "session.status_idle"], tap.types()
    same_ids_as_list(tap, s.id)
    tap.close()
    return {"session": s.id}


def reconnect():
    """The SDK runner's recovery: stream first, then the list, merged by id."""
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario reconnect")])
    tap.wait(lambda e: e.type == "session.status_running")
    tap.close()
    seen = {e.id: e for e in tap.final()}
    tap2 = Tap(s.id, deltas=False)
    history = listed(s.id)
    merged = dict(seen)
    for e in history:
        merged.setdefault(e.id, e)
    tap2.idle()
    for e in tap2.final():
        merged.setdefault(e.id, e)
    final = listed(s.id)
    assert [e.id for e in final] == list(merged.keys()), ([e.id for e in final], list(merged.keys()))
    assert final[-1].type == "session.status_idle" and final[-1].stop_reason.type == "end_turn"
    tap2.close()
    return {"session": s.id, "events": len(final)}


def pin():
    env, agent = setup(tools=[], system="You are version one.")
    v2 = client.beta.agents.update(agent.id, version=1, system="You are version two.", metadata={"k": "v"})
    assert v2.version == 2 and v2.system == "You are version two." and v2.metadata == {"k": "v"}, v2
    t = time.time()
    try:
        client.beta.agents.update(agent.id, version=1, system="lost update")
        raise AssertionError("a stale version was taken")
    except anthropic.ConflictError as e:
        assert time.time() - t < 0.45, "a version conflict is not retried"
        assert "version" in str(e), e
    assert client.beta.agents.retrieve(agent.id).version == 2
    assert client.beta.agents.retrieve(agent.id, version=1).system == "You are version one."
    versions = list(client.beta.agents.versions.list(agent.id))
    assert [v.version for v in versions] == [1, 2], versions
    latest = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    old = client.beta.sessions.create(agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=env.id)
    assert (latest.agent.version, old.agent.version) == (2, 1)
    # A later update changes neither session.
    client.beta.agents.update(agent.id, system="You are version three.")
    for sid, text in ((latest.id, "scenario pin-latest"), (old.id, "scenario pin-old")):
        tap = Tap(sid, deltas=False)
        client.beta.sessions.events.send(sid, events=[message(text)])
        assert tap.idle().stop_reason.type == "end_turn"
        tap.close()
    assert client.beta.sessions.retrieve(old.id).agent.version == 1
    mine = [x.id for x in client.beta.sessions.list(agent_id=agent.id)]
    assert set(mine) == {latest.id, old.id}, mine
    return {"latest": latest.id, "old": old.id}


def update_agent():
    env, agent = setup()
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    allow = [{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "permission_policy": {"type": "always_allow"}}]}]
    s = client.beta.sessions.update(s.id, agent={"type": "agent", "tools": allow})
    bash = next(c for c in s.agent.tools[0].configs if c.name == "bash")
    assert bash.permission_policy.type == "always_allow", s.agent.tools
    again = client.beta.agents.retrieve(agent.id)
    assert again.version == 1, "the agent itself is unchanged"
    assert next(c for c in again.tools[0].configs if c.name == "bash").permission_policy.type == "always_ask"
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario updated")])
    idle = tap.idle()
    assert idle.stop_reason.type == "end_turn", (idle, tap.types())
    use = next(e for e in tap.events if e.type == "agent.tool_use")
    assert (use.name, use.evaluated_permission) == ("bash", "allow"), use
    tap.close()
    expect(anthropic.BadRequestError, "unknown field", client.beta.sessions.update, s.id, agent={"system": "x"})
    return {"session": s.id}


def budget():
    toolset = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]
    env, agent = setup(tools=toolset)
    limit = {"type": "limit", "max_list_cost": {"amount": "0.0005", "currency": "USD"}}
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, budget=limit)
    assert (s.budget.max_list_cost.amount, s.budget.max_list_cost.currency) == ("0.0005", "USD"), s.budget
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario budget")])
    idle = tap.idle()
    assert idle.stop_reason.type == "budget_reached", (idle, tap.types())
    assert len([e for e in tap.events if e.type == "span.model_request_end"]) == 1, tap.types()
    tap.close()
    bad = anthropic.BadRequestError
    expect(bad, "budget_not_raised", client.beta.sessions.update, s.id,
           budget={"type": "limit", "max_list_cost": {"amount": "0.0001", "currency": "USD"}})
    up = client.beta.sessions.update(s.id, budget={"type": "limit", "max_list_cost": {"amount": "5", "currency": "USD"}})
    assert up.budget.max_list_cost.amount == "5", up.budget
    assert client.beta.sessions.update(s.id, budget=None).budget is None
    plain = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    expect(bad, "budget_create_only", client.beta.sessions.update, plain.id, budget=limit)
    unpriced = client.beta.agents.create(name="u", model="unpriced-model")
    expect(bad, "model_not_budgetable", client.beta.sessions.create, agent=unpriced.id, environment_id=env.id, budget=limit)
    expect(bad, "currency", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           budget={"type": "limit", "max_list_cost": {"amount": "1", "currency": "EUR"}})
    return {"session": s.id}


def pages():
    made = {client.beta.environments.create(name=f"p{i}").id for i in range(5)}
    first = client.beta.environments.list(limit=2)
    assert len(first.data) == 2 and first.next_page, first
    seen = [e.id for e in client.beta.environments.list(limit=2)]
    assert made <= set(seen) and len(seen) == len(set(seen)), seen
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario pages")])
    tap.idle()
    tap.close()
    all_ids = [e.id for e in listed(s.id)]
    paged = [e.id for e in listed(s.id, limit=2)]
    assert paged == all_ids and len(all_ids) >= 5, (paged, all_ids)
    newest = [e.id for e in listed(s.id, order="desc")]
    assert newest == list(reversed(all_ids))
    only = listed(s.id, types=["agent.message"])
    assert [e.type for e in only] == ["agent.message"], only
    return {"events": len(all_ids)}


def expect(exc, words, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except exc as e:
        assert words in str(e), (words, str(e))
        return e
    raise AssertionError(f"{fn} did not raise {exc.__name__} ({words})")


def refusals():
    env = client.beta.environments.create(name="r")
    unp = anthropic.UnprocessableEntityError
    bad = anthropic.BadRequestError
    ts = "agent_toolset_20260401"
    expect(unp, "custom tools", client.beta.agents.create, name="a", model="m",
           tools=[{"type": "custom", "name": "x", "description": "d", "input_schema": {"type": "object"}}])
    expect(unp, "web_search", client.beta.agents.create, name="a", model="m",
           tools=[{"type": ts, "configs": [{"name": "web_search", "enabled": True}]}])
    expect(unp, "multiagent", client.beta.agents.create, name="a", model="m",
           multiagent={"type": "coordinator", "agents": [{"type": "self"}]})
    expect(unp, "skills", client.beta.agents.create, name="a", model="m", skills=[{"type": "anthropic", "skill_id": "xlsx"}])
    expect(bad, "model", client.beta.agents.create, name="a", model="")
    expect(unp, "allowed_hosts", client.beta.environments.create, name="e",
           config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["example.com"]}})
    expect(unp, "packages", client.beta.environments.create, name="e",
           config={"type": "cloud", "packages": {"pip": ["requests"]}})
    vault = client.beta.vaults.create(display_name="v")
    expect(unp, "mcp_oauth", client.beta.vaults.credentials.create, vault.id,
           auth={"type": "mcp_oauth", "mcp_server_url": "https://x/mcp", "access_token": "t"})
    agent = client.beta.agents.create(name="a", model="m")
    expect(bad, "not found", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{"type": "file", "file_id": "file_1"}])
    expect(bad, "environment", client.beta.sessions.create, agent=agent.id, environment_id="env_nope")
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    expect(unp, "multiagent", client.beta.sessions.threads.list, s.id)
    expect(unp, "search_result", client.beta.sessions.events.send, s.id,
           events=[{"type": "user.message", "content": [{"type": "search_result", "source": "x", "title": "t", "content": []}]}])
    expect(unp, "system.message", client.beta.sessions.events.send, s.id,
           events=[{"type": "system.message", "content": [{"type": "text", "text": "c"}]}])
    expect(bad, "deny_message", client.beta.sessions.events.send, s.id,
           events=[{"type": "user.tool_confirmation", "tool_use_id": "evt_x", "result": "deny", "deny_message": "x" * 300_000}])
    expect(bad, "tool use", client.beta.sessions.events.send, s.id,
           events=[{"type": "user.tool_confirmation", "tool_use_id": "evt_nope", "result": "allow"}])
    expect(unp, "github_repository", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{"type": "github_repository", "url": "https://github.com/a/b"}])
    e = expect(anthropic.NotFoundError, "session", client.beta.sessions.retrieve, "sesn_nope")
    assert e.body["error"]["type"] == "not_found_error", e.body
    assert e.body["error"]["details"]["error_code"] == "session_not_found", e.body
    wrong = anthropic.Anthropic(base_url=BASE, api_key="not-a-key", max_retries=0)
    expect(anthropic.AuthenticationError, "", wrong.beta.agents.list)
    return {}


def vault_mcp():
    url, token = os.environ["MCP_URL"], os.environ["MCP_TOKEN"]
    env = client.beta.environments.create(name="m")
    vault = client.beta.vaults.create(display_name="docs")
    # Created with a stale token, rotated after the session exists: the session uses the new one.
    cred = client.beta.vaults.credentials.create(
        vault.id, display_name="docs token", auth={"type": "static_bearer", "mcp_server_url": url, "token": "stale-token"}
    )
    shown = client.beta.vaults.credentials.retrieve(cred.id, vault_id=vault.id)
    assert token not in json.dumps(shown.model_dump(mode="json")), "a credential never shows its token"
    agent = client.beta.agents.create(
        name="docs agent", model="claude-sonnet-4-5",
        mcp_servers=[{"type": "url", "name": "docs", "url": url}],
        tools=[{"type": "mcp_toolset", "mcp_server_name": "docs", "default_config": {"permission_policy": {"type": "always_allow"}}}],
    )
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, vault_ids=[vault.id])
    rotated = client.beta.vaults.credentials.update(
        cred.id, vault_id=vault.id, auth={"type": "static_bearer", "token": token}
    )
    assert rotated.auth.mcp_server_url == url and token not in json.dumps(rotated.model_dump(mode="json"))
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario mcp")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    use = next(e for e in tap.events if e.type == "agent.mcp_tool_use")
    assert (use.mcp_server_name, use.name, use.input) == ("docs", "add", {"a": 2, "b": 3}), use
    result = next(e for e in tap.events if e.type == "agent.mcp_tool_result")
    assert result.mcp_tool_use_id == use.id and not result.is_error, result
    assert "5" in result.content[0].text, result
    everything = json.dumps([e.model_dump(mode="json") for e in listed(s.id)])
    assert token not in everything, "the token is in no event"
    tap.close()
    return {"session": s.id}


def outcome():
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    r = client.beta.sessions.events.send(s.id, events=[{
        "type": "user.define_outcome", "description": "scenario outcome: write the summary",
        "rubric": {"type": "text", "content": "A summary exists."}, "max_iterations": 2,
    }])
    defined = r.data[0]
    assert defined.type == "user.define_outcome" and defined.outcome_id, defined
    end = tap.wait(lambda e: e.type == "span.outcome_evaluation_end")
    assert end.result == "satisfied" and end.outcome_id == defined.outcome_id, end
    start = next(e for e in tap.final() if e.type == "span.outcome_evaluation_start")
    assert end.outcome_evaluation_start_id == start.id and end.iteration == 0, (start, end)
    types = tap.types()
    assert types[0] == "user.define_outcome" and "user.message" not in types, types
    use = next(e for e in tap.final() if e.type == "agent.tool_use")
    assert use.name == "goal_done", use
    got = client.beta.sessions.retrieve(s.id)
    (ev,) = got.outcome_evaluations
    assert (ev.outcome_id, ev.result) == (defined.outcome_id, "satisfied"), ev
    same_ids_as_list(tap, s.id)
    expect(anthropic.UnprocessableEntityError, "file", client.beta.sessions.events.send, s.id, events=[{
        "type": "user.define_outcome", "description": "d", "rubric": {"type": "file", "file_id": "file_1"}}])
    expect(anthropic.BadRequestError, "max_iterations", client.beta.sessions.events.send, s.id, events=[{
        "type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "c"},
        "max_iterations": 21}])
    tap.close()
    return {"session": s.id, "outcome": defined.outcome_id}


def memory():
    import hashlib
    mem = client.beta.memory_stores.memories
    versions_api = client.beta.memory_stores.memory_versions
    store = client.beta.memory_stores.create(name="notes", description="team notes")
    assert store.type == "memory_store" and store.name == "notes", store
    m = mem.create(store.id, path="/people/ada.md", content="Ada likes tea.")
    sha = hashlib.sha256(b"Ada likes tea.").hexdigest()
    assert (m.path, m.content_sha256, m.content_size_bytes) == ("/people/ada.md", sha, 14), m
    assert m.content is None, "create answers the basic view"
    assert mem.retrieve(m.id, memory_store_id=store.id).content == "Ada likes tea."
    # A precondition on the content read: the first write lands, a second on the same read
    # is refused at once.
    upd = mem.update(m.id, memory_store_id=store.id, content="Ada likes coffee.",
                     precondition={"type": "content_sha256", "content_sha256": sha})
    assert upd.memory_version_id != m.memory_version_id, upd
    t = time.time()
    e = expect(anthropic.ConflictError, "precondition", mem.update, m.id, memory_store_id=store.id,
               content="lost", precondition={"type": "content_sha256", "content_sha256": sha})
    assert e.body["error"]["type"] == "memory_precondition_failed_error", e.body
    assert time.time() - t < 0.45, "not retried"
    e = expect(anthropic.ConflictError, "", mem.create, store.id, path="/people/ada.md", content="again")
    assert e.body["error"]["type"] == "memory_path_conflict_error", e.body
    mem.create(store.id, path="/people/bob.md", content="Bob.")
    mem.create(store.id, path="/projects/x/plan.md", content="Plan.")
    top = list(mem.list(store.id, depth=1, path_prefix="/"))
    assert [(x.type, x.path) for x in top] == [("memory_prefix", "/people/"), ("memory_prefix", "/projects/")], top
    people = list(mem.list(store.id, path_prefix="/people/", limit=1))
    assert [x.path for x in people] == ["/people/ada.md", "/people/bob.md"], people
    full = list(mem.list(store.id, path_prefix="/people/", view="full"))
    assert full[0].content == "Ada likes coffee.", full
    versions = list(versions_api.list(store.id, memory_id=m.id))
    assert [v.operation for v in versions] == ["modified", "created"], versions
    first = versions[-1]
    assert versions_api.retrieve(first.id, memory_store_id=store.id).content == "Ada likes tea."
    red = versions_api.redact(first.id, memory_store_id=store.id)
    assert red.redacted_at is not None and red.content is None, red
    assert versions_api.retrieve(first.id, memory_store_id=store.id).content is None
    expect(anthropic.ConflictError, "current version", versions_api.redact, versions[0].id, memory_store_id=store.id)
    expect(anthropic.ConflictError, "precondition", mem.delete, m.id, memory_store_id=store.id,
           expected_content_sha256=sha)
    done = mem.delete(m.id, memory_store_id=store.id,
                      expected_content_sha256=hashlib.sha256(b"Ada likes coffee.").hexdigest())
    assert done.type == "memory_deleted", done
    expect(anthropic.NotFoundError, "", mem.retrieve, m.id, memory_store_id=store.id)
    assert [s.id for s in client.beta.memory_stores.list()] == [store.id]
    client.beta.memory_stores.archive(store.id)
    expect(anthropic.BadRequestError, "archived", mem.create, store.id, path="/x.md", content="x")
    assert client.beta.memory_stores.delete(store.id).type == "memory_store_deleted"
    return {"store": store.id}


def stores():
    env, agent = setup(tools=[])
    store = client.beta.memory_stores.create(name="Team Notes", description="how the team works")
    client.beta.memory_stores.memories.create(store.id, path="/people/ada.md", content="Ada likes tea.")
    attach = {"type": "memory_store", "memory_store_id": store.id, "instructions": "Keep style notes under /style/."}
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[attach])
    (r,) = s.resources
    assert (r.type, r.memory_store_id, r.access, r.name, r.description, r.instructions) == (
        "memory_store", store.id, "read_write", "Team Notes", "how the team works", attach["instructions"]), r
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario stores-rw")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    use = next(e for e in tap.events if e.type == "agent.tool_use")
    assert use.name == "store_write", use
    result = next(e for e in tap.events if e.type == "agent.tool_result")
    assert not result.is_error, result
    tap.close()
    # The session's write is the store's, by the session.
    mems = list(client.beta.memory_stores.memories.list(store.id, path_prefix="/style/", view="full"))
    assert [(m.path, m.content) for m in mems] == [("/style/tabs.md", "Use tabs.")], mems
    (v,) = list(client.beta.memory_stores.memory_versions.list(store.id, session_id=s.id))
    assert (v.operation, v.created_by.type, v.created_by.session_id) == ("created", "session_actor", s.id), v
    assert [x.id for x in client.beta.sessions.list(memory_store_id=store.id)] == [s.id]
    # Taken off the session: its next run no longer has the store.
    assert [x.id for x in client.beta.sessions.resources.list(s.id)] == [r.id] and r.id.startswith("sesrsc_")
    assert client.beta.sessions.resources.delete(r.id, session_id=s.id).type == "session_resource_deleted"
    assert client.beta.sessions.retrieve(s.id).resources == []
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario stores-gone")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    tap.close()
    # Read-only: the store is in the prompt, and the agent cannot change it.
    ro = client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[{**attach, "access": "read_only"}])
    assert ro.resources[0].access == "read_only", ro.resources
    tap = Tap(ro.id, deltas=False)
    client.beta.sessions.events.send(ro.id, events=[message("scenario stores-ro")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    tap.close()
    bad = anthropic.BadRequestError
    expect(bad, "not found", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{"type": "memory_store", "memory_store_id": "memstore_nope"}])
    expect(bad, "twice", client.beta.sessions.create, agent=agent.id, environment_id=env.id, resources=[attach, attach])
    expect(bad, "access", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{**attach, "access": "write_only"}])
    client.beta.memory_stores.archive(store.id)
    expect(bad, "archived", client.beta.sessions.create, agent=agent.id, environment_id=env.id, resources=[attach])
    return {"store": store.id, "session": s.id}


def skills():
    import io
    import zipfile
    bad = anthropic.BadRequestError
    md = ("---\nname: csv-report\ndescription: Make a CSV report of the numbers.\n---\n"
          "Print the report with `cat /workspace/skills/csv-report/scripts/report.py`.\n")
    script = ("csv-report/scripts/report.py", b"print('a,b')\n", "text/x-python")
    sk = client.beta.skills.create(display_name="CSV report", files=[("csv-report/SKILL.md", md.encode(), "text/markdown"), script])
    assert (sk.type, sk.source, sk.display_name) == ("skill", "custom", "CSV report"), sk
    v1 = sk.latest_version_id
    ver = client.beta.skills.versions.retrieve(v1, skill_id=sk.id)
    assert (ver.name, ver.description, ver.skill_id) == ("csv-report", "Make a CSV report of the numbers.", sk.id), ver
    archive = zipfile.ZipFile(io.BytesIO(client.beta.skills.versions.download(v1, skill_id=sk.id).read()))
    assert sorted(archive.namelist()) == ["csv-report/SKILL.md", "csv-report/scripts/report.py"], archive.namelist()
    assert archive.read("csv-report/SKILL.md").decode() == md
    md2 = md.replace("Make a CSV", "Make a tidy CSV")
    v2 = client.beta.skills.versions.create(sk.id, files=[("csv-report/SKILL.md", md2.encode(), "text/markdown"), script])
    assert client.beta.skills.retrieve(sk.id).latest_version_id == v2.id and v2.id > v1, v2
    assert [v.id for v in client.beta.skills.versions.list(sk.id)] == [v2.id, v1]
    assert [x.id for x in client.beta.skills.list()] == [sk.id]
    assert list(client.beta.skills.list(source="anthropic")) == []
    expect(bad, "keeps the skill's name", client.beta.skills.versions.create, sk.id,
           files=[("other/SKILL.md", md.replace("csv-report", "other").encode(), "text/markdown")])
    expect(bad, "SKILL.md", client.beta.skills.create, files=[("x/README.md", b"x", "text/plain")])
    expect(bad, "one top-level directory", client.beta.skills.create,
           files=[("a/SKILL.md", md.encode(), "text/markdown"), ("b/x.py", b"", "text/plain")])
    expect(bad, "not found", client.beta.agents.create, name="a", model="m", skills=[{"type": "custom", "skill_id": "skill_nope"}])
    # An agent pinned to the first version: its session has the skill and its files.
    env = client.beta.environments.create(name="skills")
    toolset = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]
    agent = client.beta.agents.create(name="reporter", model="claude-sonnet-4-5", tools=toolset,
                                      skills=[{"type": "custom", "skill_id": sk.id, "version": v1}])
    assert (agent.skills[0].skill_id, agent.skills[0].version) == (sk.id, v1), agent.skills
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario skills")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    results = [e for e in tap.events if e.type == "agent.tool_result"]
    assert len(results) == 2 and not any(r.is_error for r in results), results
    assert "/workspace/skills/csv-report/" in results[0].content[0].text, results[0]
    assert "print('a,b')" in results[1].content[0].text, results[1]
    tap.close()
    # Versions go, then the skill.
    assert client.beta.skills.versions.delete(v2.id, skill_id=sk.id).type == "skill_version_deleted"
    assert client.beta.skills.retrieve(sk.id).latest_version_id == v1
    expect(anthropic.ConflictError, "only version", client.beta.skills.versions.delete, v1, skill_id=sk.id)
    assert client.beta.skills.delete(sk.id).type == "skill_deleted"
    expect(anthropic.NotFoundError, "", client.beta.skills.retrieve, sk.id)
    expect(bad, "no longer exists", client.beta.sessions.create, agent=agent.id, environment_id=env.id)
    return {"skill": sk.id}


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def media():
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    notes = {"type": "document", "title": "notes.txt", "source": {"type": "text", "media_type": "text/plain", "data": "Q3 revenue: 12"}}
    sent = client.beta.sessions.events.send(s.id, events=[{"type": "user.message", "content": [
        {"type": "text", "text": "scenario media: what is this?"}, image, notes]}])
    echo = sent.data[0]
    assert [b.type for b in echo.content] == ["text", "image"], echo
    assert "notes.txt" in echo.content[0].text and "Q3 revenue: 12" in echo.content[0].text, echo
    assert (echo.content[1].source.type, echo.content[1].source.data) == ("base64", PNG), echo.content[1]
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    streamed = next(e for e in tap.events if e.type == "user.message")
    assert streamed.id == echo.id and streamed.content[1].source.data == PNG, streamed
    (listed_echo,) = [e for e in listed(s.id) if e.type == "user.message"]
    assert listed_echo.content[1].source.data == PNG, listed_echo
    tap.close()
    # An image alone is a message too.
    alone = client.beta.sessions.events.send(s.id, events=[{"type": "user.message", "content": [image]}])
    assert [b.type for b in alone.data[0].content] == ["image"], alone
    expect(anthropic.BadRequestError, "not found", client.beta.sessions.events.send, s.id, events=[
        {"type": "user.message", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}])
    expect(anthropic.BadRequestError, "", client.beta.sessions.events.send, s.id, events=[
        {"type": "user.message", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}]}])
    expect(anthropic.BadRequestError, "no text", client.beta.sessions.events.send, s.id, events=[
        {"type": "user.message", "content": []}])
    return {"session": s.id}


def files():
    import base64
    csv = b"a,b\n1,2\n"
    f = client.beta.files.upload(file=("data/report.csv", csv, "text/csv"))
    assert (f.type, f.filename, f.mime_type, f.size_bytes, f.expires_at) == ("file", "report.csv", "text/csv", 8, None), f
    assert client.beta.files.retrieve_metadata(f.id).filename == "report.csv"
    assert client.beta.files.download(f.id).read() == csv
    img = client.beta.files.upload(file=("pixel.png", base64.b64decode(PNG), "image/png"))
    soon = client.beta.files.upload(file=("x.txt", b"x", "text/plain"), expires_in_seconds=3600)
    assert soon.expires_at is not None, soon
    assert [x.id for x in client.beta.files.list()] == [soon.id, img.id, f.id]
    assert [x.id for x in client.beta.files.list(ids=[f.id, "file_nope"])] == [f.id]
    expect(anthropic.BadRequestError, "expires_in_seconds", client.beta.files.upload, file=("y", b"y", "text/plain"),
           expires_in_seconds=10)
    toolset = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_allow"}}}]
    env, agent = setup(tools=toolset)
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id, resources=[
        {"type": "file", "file_id": f.id, "mount_path": "/workspace/data/in.csv"}])
    (r,) = s.resources
    assert (r.type, r.file_id, r.mount_path) == ("file", f.id, "/workspace/data/in.csv") and r.id.startswith("sesrsc_"), r
    tap = Tap(s.id, deltas=False)
    sent = client.beta.sessions.events.send(s.id, events=[{"type": "user.message", "content": [
        {"type": "text", "text": "scenario files: sum the csv"}, {"type": "image", "source": {"type": "file", "file_id": img.id}}]}])
    assert sent.data[0].content[1].source.data == PNG, sent.data[0].content[1]
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    (result,) = [e for e in tap.events if e.type == "agent.tool_result"]
    assert "1,2" in result.content[0].text, result
    tap.close()
    bad = anthropic.BadRequestError
    expect(bad, "/workspace/", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{"type": "file", "file_id": f.id, "mount_path": "/mnt/data/in.csv"}])
    res = client.beta.sessions.resources
    assert [x.id for x in res.list(s.id)] == [r.id]
    assert res.retrieve(r.id, session_id=s.id).file_id == f.id
    added = res.add(s.id, type="file", file_id=img.id, mount_path="/workspace/data/pixel.png")
    assert (added.type, added.mount_path) == ("file", "/workspace/data/pixel.png"), added
    assert [x.id for x in res.list(s.id)] == [r.id, added.id]
    expect(bad, "already", res.add, s.id, type="file", file_id=f.id, mount_path="/workspace/data/pixel.png")
    expect(anthropic.UnprocessableEntityError, "github_repository", res.update, r.id, session_id=s.id,
           authorization_token="t")
    assert res.delete(added.id, session_id=s.id).type == "session_resource_deleted"
    assert [x.id for x in res.list(s.id)] == [r.id]
    expect(anthropic.NotFoundError, "", res.retrieve, added.id, session_id=s.id)
    assert client.beta.files.delete(f.id).type == "file_deleted"
    expect(anthropic.NotFoundError, "", client.beta.files.retrieve_metadata, f.id)
    expect(bad, "not found", client.beta.sessions.create, agent=agent.id, environment_id=env.id,
           resources=[{"type": "file", "file_id": f.id}])
    return {"session": s.id}


def wait_dream(dream_id, want, timeout=60):
    deadline = time.time() + timeout
    while True:
        d = client.beta.dreams.retrieve(dream_id)
        if d.status in want:
            return d
        assert time.time() < deadline, d
        time.sleep(0.1)


def dreams():
    mem = client.beta.memory_stores.memories
    store = client.beta.memory_stores.create(name="people", description="who is who")
    mem.create(store.id, path="/people/ada.md", content="Ada likes tea.")
    env, agent = setup(tools=[])
    s = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    tap = Tap(s.id, deltas=False)
    client.beta.sessions.events.send(s.id, events=[message("scenario dream-source: Ada switched to coffee")])
    assert tap.idle().stop_reason.type == "end_turn", tap.types()
    tap.close()
    inputs = [{"type": "memory_store", "memory_store_id": store.id}, {"type": "sessions", "session_ids": [s.id]}]
    d = client.beta.dreams.create(inputs=inputs, model="claude-sonnet-4-5", instructions="DREAM-ONE: keep people under /people/.")
    assert d.type == "dream" and d.status in ("pending", "running", "completed"), d
    assert d.model.id == "claude-sonnet-4-5" and d.output_behavior.type == "create_new", d
    (out,) = d.outputs
    assert out.memory_store_id != store.id, "create_new writes a new store"
    done = wait_dream(d.id, ("completed", "failed"))
    assert done.status == "completed" and done.ended_at is not None and done.error is None, done
    assert done.usage.output_tokens > 0, done.usage
    dreamed = {m.path: m.content for m in mem.list(out.memory_store_id, view="full")}
    assert dreamed == {"/people/ada.md": "Ada likes coffee."}, dreamed
    assert mem.list(store.id, view="full").data[0].content == "Ada likes tea.", "the input store is untouched"
    (v,) = [v for v in client.beta.memory_stores.memory_versions.list(out.memory_store_id) if v.operation == "modified"]
    assert v.content_sha256, v
    assert [x.id for x in client.beta.dreams.list(statuses=["completed"])] == [d.id]
    assert list(client.beta.dreams.list(statuses=["running"])) == []
    expect(anthropic.ConflictError, "completed", client.beta.dreams.cancel, d.id)
    # In place, and canceled while it works.
    slow = client.beta.dreams.create(inputs=inputs, model={"id": "claude-sonnet-4-5"}, instructions="DREAM-TWO",
                                     output_behavior={"type": "update_existing", "memory_store_id": store.id})
    assert slow.outputs[0].memory_store_id == store.id, slow
    wait_dream(slow.id, ("running",))
    canceled = client.beta.dreams.cancel(slow.id)
    assert wait_dream(canceled.id, ("canceled",)).status == "canceled"
    archived = client.beta.dreams.archive(slow.id)
    assert archived.archived_at is not None, archived
    assert [x.id for x in client.beta.dreams.list()] == [d.id], "archived dreams are not listed"
    assert [x.id for x in client.beta.dreams.list(include_archived=True)] == [slow.id, d.id]
    bad = anthropic.BadRequestError
    expect(bad, "exactly one", client.beta.dreams.create, inputs=inputs[:1], model="claude-sonnet-4-5")
    expect(bad, "not found", client.beta.dreams.create, model="claude-sonnet-4-5",
           inputs=[inputs[0], {"type": "sessions", "session_ids": ["sesn_nope"]}])
    expect(bad, "input memory store", client.beta.dreams.create, inputs=inputs, model="claude-sonnet-4-5",
           output_behavior={"type": "update_existing", "memory_store_id": out.memory_store_id})
    expect(anthropic.NotFoundError, "", client.beta.dreams.retrieve, "dream_nope")
    stores = [x.id for x in client.beta.memory_stores.list()]
    expect(bad, "", client.beta.dreams.create, inputs=inputs, model="unconfigured/model")
    assert [x.id for x in client.beta.memory_stores.list()] == stores, "a failed dream leaves no new store"
    return {"dream": d.id}


def deployments():
    env, agent = setup(tools=[])
    d = client.beta.deployments.create(
        name="nightly", agent=agent.id, environment_id=env.id,
        initial_events=[message("scenario deployment")],
        schedule={"type": "cron", "expression": "0 3 * * *", "timezone": "Europe/Paris"},
        metadata={"team": "ops"},
    )
    assert d.status == "active" and d.agent.version == 1, d
    assert len(d.schedule.upcoming_runs_at) == 3, d.schedule
    run = client.beta.deployments.run(d.id)
    assert run.trigger_context.type == "manual" and run.session_id and run.error is None, run
    s = client.beta.sessions.retrieve(run.session_id)
    assert s.deployment_id == d.id and s.metadata == {"team": "ops"}, s
    tap = Tap(s.id, deltas=False)
    deadline = time.time() + 30
    while not any(e.type == "session.status_idle" for e in listed(s.id)):
        assert time.time() < deadline, [e.type for e in listed(s.id)]
        time.sleep(0.2)
    tap.close()
    assert [e.type for e in listed(s.id)][0] == "user.message"
    runs = list(client.beta.deployment_runs.list(deployment_id=d.id))
    assert [r.id for r in runs] == [run.id], runs
    assert client.beta.deployment_runs.retrieve(run.id).session_id == s.id
    assert [x.id for x in client.beta.sessions.list(deployment_id=d.id)] == [s.id]
    paused = client.beta.deployments.pause(d.id)
    assert paused.status == "paused" and paused.schedule.upcoming_runs_at == [], paused
    assert client.beta.deployments.unpause(d.id).status == "active"
    upd = client.beta.deployments.update(d.id, schedule=None)
    assert upd.schedule is None, upd
    expect(anthropic.BadRequestError, "cron", client.beta.deployments.update, d.id,
           schedule={"type": "cron", "expression": "every day", "timezone": "UTC"})
    expect(anthropic.BadRequestError, "currency", client.beta.deployments.create, name="x", agent=agent.id,
           environment_id=env.id, initial_events=[message("x")],
           budget={"type": "limit", "max_list_cost": {"amount": "1", "currency": "EUR"}})
    # Resources: each fire's session mounts them.
    store = client.beta.memory_stores.create(name="ops notes")
    withres = client.beta.deployments.update(d.id, resources=[{"type": "memory_store", "memory_store_id": store.id,
                                                               "access": "read_only"}],
                                             budget={"type": "limit", "max_list_cost": {"amount": "2", "currency": "USD"}})
    assert withres.budget.max_list_cost.amount == "2", withres.budget
    assert withres.resources[0].memory_store_id == store.id, withres.resources
    fired = client.beta.sessions.retrieve(client.beta.deployments.run(d.id).session_id)
    assert [(r.type, r.memory_store_id, r.access) for r in fired.resources] == [("memory_store", store.id, "read_only")]
    assert fired.budget.max_list_cost.amount == "2", fired.budget
    expect(anthropic.BadRequestError, "not found", client.beta.deployments.update, d.id,
           resources=[{"type": "memory_store", "memory_store_id": "memstore_nope"}])
    client.beta.deployments.archive(d.id)
    expect(anthropic.BadRequestError, "archived", client.beta.deployments.run, d.id)
    return {"deployment": d.id, "session": s.id}


if __name__ == "__main__":
    out = globals()[sys.argv[1]]()
    print(json.dumps(out))
