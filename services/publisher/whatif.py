"""What-if (operators): a catalogue change in the catalogue's own YAML form (`lists:`,
`measures:`; `null` removes an entry), merged over the live catalogue and checked by the
start-up validator, then planned by the publisher's own rules (`plan_for_subject`,
`materialize`, `follow_catalogue`) over the current archives in a read-only transaction:
who would enter or leave each list, which notices would be sent or revoked if it took
effect today. Nothing is written or sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
import yaml
from fastapi import Depends, FastAPI, Request
from pydantic import ValidationError

from services.publisher import domain, lifecycle, store
from services.publisher.responses import WhatIf
from shared import clock, credentials
from shared.catalogue import Catalogue
from shared.context import ServiceContext
from shared.http import ANSWERED_AS_RETURNED, Problem

MAX_BYTES = 256 * 1024
SHOWN = 1000  # subjects listed per list and agency, at most (`truncated` beyond)
CHANGEABLE = ("lists", "measures")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
              "text/plain")


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors or aliases: an alias can expand a small body into a huge one
    (a billion laughs), and a catalogue change never needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise Problem(422, "yaml_alias", "YAML aliases are not allowed",
                          errors=[{"field": "body", "code": "yaml_alias",
                                   "message": "no anchors or aliases (& and *)"}])
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None):
            raise Problem(422, "yaml_anchor", "YAML anchors are not allowed",
                          errors=[{"field": "body", "code": "yaml_anchor",
                                   "message": "no anchors or aliases (& and *)"}])
        return super().compose_node(parent, index)


def parse_change(body: bytes) -> dict[str, dict[str, Any]]:
    """The change as `{lists: {...}, measures: {...}}`; Problem 422 naming the path."""
    try:
        change = yaml.load(body.decode("utf-8"), Loader=_NoAliases)
    except UnicodeDecodeError as exc:
        raise Problem(422, "validation", "The body is not UTF-8 text", errors=[
            {"field": "body", "code": "encoding", "message": "UTF-8 YAML"}]) from exc
    except yaml.YAMLError as exc:
        raise Problem(422, "validation", "The body is not YAML", errors=[
            {"field": "body", "code": "yaml", "message": str(exc)[:500]}]) from exc
    if not isinstance(change, dict):
        raise Problem(422, "validation", "The change is a mapping", errors=[
            {"field": "body", "code": "type", "message": "lists: and measures: at the top"}])
    errors = []
    for key, value in change.items():
        if key not in CHANGEABLE:
            errors.append({"field": str(key), "code": "not_allowed",
                           "message": "only lists and measures can change"})
        elif not isinstance(value, dict):
            errors.append({"field": str(key), "code": "type",
                           "message": "a mapping of names to entries (null removes one)"})
    if errors:
        raise Problem(422, "validation", "The change is not in the catalogue's form",
                      errors=errors)
    return change


def merged(live: Catalogue, change: dict[str, dict[str, Any]]) -> Catalogue:
    """The live catalogue with the change over it, through the start-up validator."""
    raw = live.model_dump(mode="json")
    for section, entries in change.items():
        for name, entry in entries.items():
            if entry is None:
                raw[section].pop(str(name), None)
            else:
                raw[section][str(name)] = entry
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            if e["type"] == "value_error" and not loc:
                # The cross-reference check: "path: message; path: message".
                for problem in str(e["ctx"]["error"]).split("; "):
                    path, _, message = problem.partition(": ")
                    errors.append({"field": path, "code": "reference", "message": message})
            else:
                errors.append({"field": loc, "code": e["type"], "message": e["msg"]})
        raise Problem(422, "validation", "The changed catalogue is not valid",
                      errors=errors) from exc


def _affected(live: Catalogue, new: Catalogue) -> tuple[set[str], set[str]]:
    """The lists whose definition or measures change, and the items that feed them."""
    lists = {n for n in set(live.lists) | set(new.lists) if live.lists.get(n) != new.lists.get(n)}
    for name in set(live.measures) | set(new.measures):
        old, now = live.measures.get(name), new.measures.get(name)
        if old != now:
            lists |= set(old.lists if old else ()) | set(now.lists if now else ())
    items = {i for c in (live, new) for n in lists if n in c.lists for i in c.lists[n].items}
    return lists, items


async def what_if(conn: asyncpg.Connection, live: Catalogue, new: Catalogue) -> dict[str, Any]:
    now, today = clock.now(), clock.today()
    lists, items = _affected(live, new)
    keys = await store.subjects_for_what_if(conn, sorted(lists), sorted(items))
    enters: dict[str, list[str]] = {}
    leaves: dict[str, list[str]] = {}
    sent: dict[str, list[dict[str, Any]]] = {}
    revoked: dict[str, list[dict[str, Any]]] = {}
    for chunk in _chunks(keys, 500):
        snapshots = await store.snapshots(conn, chunk)
        open_entries = await store.open_entries(conn, chunk)
        served = await lifecycle.served_decisions(conn, chunk)
        actions: list[domain.Action] = []
        for key in chunk:
            if key not in snapshots:
                continue
            # Entries on lists the new catalogue no longer has leave; others follow the rules.
            actions += domain.plan_snapshot(new, key, snapshots[key], open_entries.get(key, {}),
                                            served.get(key), today)
        for a in actions:
            target = enters if isinstance(a, domain.Enter) else leaves if isinstance(
                a, domain.Exit) else None
            if target is not None:
                lst = a.list if isinstance(a, domain.Enter) else a.entry.list
                target.setdefault(lst, []).append(a.subject_key if isinstance(a, domain.Enter)
                                                  else a.entry.subject_key)
        exits = [a.entry.entry_id for a in actions if isinstance(a, domain.Exit)]
        issued = await store.unrevoked_notices(conn, exits) if exits else {}
        # Numbered as the publisher would number them (entry and change ids).
        history = domain.History(
            entries=await store.entry_counts(conn, [(a.list, a.subject_key) for a in actions
                                                    if isinstance(a, domain.Enter)]),
            changes=await store.change_counts(conn, [a.entry.entry_id for a in actions
                                                     if not isinstance(a, domain.Enter)]))
        fx = domain.materialize(new, actions, snapshots, issued, now, today, history)
        notices = [(agency, n) for agency, n, _ in fx.notices]
        # Entries that stay: their notices follow the new measures.
        staying = [e for key in chunk for e in open_entries.get(key, {}).values()
                   if e.status == "active" and e.entry_id not in set(exits)
                   and e.list in lists]
        if staying:
            stay_issued = await store.unrevoked_notices(conn, [e.entry_id for e in staying])
            taken = await store.notice_ids_of_entries(conn, [e.entry_id for e in staying])
            notices += [(agency, n) for agency, n, _ in domain.follow_catalogue(
                new, staying, stay_issued, snapshots, taken, now, today)]
        for agency, n in notices:
            target_n = revoked if n.kind == "revocation" else sent
            target_n.setdefault(agency, []).append(
                {"subject": domain.public_subject(n.subject) | {"key": n.subject.key},
                 "measure": n.measure, "list": n.list, "kind": n.kind,
                 "notice_id": n.notice_id, "revokes": n.revokes})
    return {"as_of": today, "lists": {
        name: {"enter": _capped([{"subject": k} for k in enters.get(name, [])]),
               "leave": _capped([{"subject": k} for k in leaves.get(name, [])])}
        for name in sorted(lists)},
        "agencies": {agency: {"sent": _capped(sent.get(agency, [])),
                              "revoked": _capped(revoked.get(agency, []))}
                     for agency in sorted(set(sent) | set(revoked))}}


def _capped(items: list[Any]) -> dict[str, Any]:
    return {"count": len(items), "subjects": items[:SHOWN], "truncated": len(items) > SHOWN}


def _chunks(keys: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(keys), size):
        yield keys[i:i + size]


def add_routes(app: FastAPI, ctx: ServiceContext) -> None:
    operator = credentials.bearer(ctx.pool, "operator")

    @app.post("/api/v1/what-if",
              response_model=WhatIf, **ANSWERED_AS_RETURNED, openapi_extra={"requestBody": {
        "required": True, "content": {"application/yaml": {"schema": {"type": "string"}}}}})
    async def post_what_if(request: Request, _: str = Depends(operator)) -> dict[str, Any]:
        """A catalogue change (YAML: `lists:` and `measures:`, `null` removes) planned over
        the current archives as if it took effect today; nothing is written or sent."""
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in YAML_TYPES:
            raise Problem(415, "unsupported_media_type", "Send the change as YAML",
                          detail=f"Content-Type {media or 'none'}; use application/yaml")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BYTES):
            raise Problem(413, "too_large", f"At most {MAX_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                raise Problem(413, "too_large", f"At most {MAX_BYTES} bytes")
        new = merged(ctx.catalogue, parse_change(body))
        async with ctx.pool.acquire() as conn, conn.transaction(readonly=True):
            return await what_if(conn, ctx.catalogue, new)

