"""Rule sets in the database: bundled sets (read-only), clinic copies (versioned), the active
set per treatment, and medical-director confirmation of grade-U rules.

A clinic copy is append-only: every edit, import or confirmation writes a new version row and
keeps the old ones. A copy's document ``version`` is its sequence number, so ``id@version``
(recorded in every screening and dose result) names exactly one document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ketaclinic.clinical.inputs import parse_number
from ketaclinic.clinical.rules import ClinicalInputError
from ketaclinic.clinical.ruleset_governance import GovernanceDecision, check_change
from ketaclinic.clinical.rulesets import (
    BUNDLED_IDS,
    TREATMENTS,
    RuleSet,
    UnconfirmedRule,
    confirm_rule,
    list_unconfirmed,
    load_bundled_ruleset,
    load_ruleset,
)
from ketaclinic.services.accounts.permissions import Perm, allowed
from ketaclinic.services.audit.trail import Actor
from ketaclinic.services.context import Context
from ketaclinic.services.errors import Conflict, InvalidInput, NotFound
from ketaclinic.services.paging import Paged, page_list
from ketaclinic.services.unit_of_work import UnitOfWork
from ketaclinic.store.tables import User
from ketaclinic.store.tables_dosing import (
    ActiveRuleSet,
    RuleConfirmation,
    RuleSetApproval,
    RuleSetVersion,
)

DEFAULT_ACTIVE = {"ketamine-iv": "ketamine-iv", "esketamine": "esketamine-us"}
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,58}$")
MAX_DOCUMENT_CHARS = 200_000


@dataclass(frozen=True)
class Cosign:
    """A second person's credentials, given with a change that loosens a hard limit."""

    username: str = ""
    password: str = ""

    def __bool__(self) -> bool:
        return bool(self.username.strip() and self.password)


class GovernanceRefused(InvalidInput):
    """A rule-set change governance refuses (422); ``detail`` goes to the audit trail."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class CosignRequired(GovernanceRefused):
    """The change loosens a hard limit in effect: a medical director must co-sign (422)."""


@dataclass(frozen=True)
class RuleSetSummary:
    id: str
    title: str
    treatment: str
    version: str
    ref: str
    bundled: bool
    versions: int
    active_for: str | None
    unconfirmed: int


@dataclass(frozen=True)
class VersionInfo:
    seq: int
    version: str
    ref: str
    change_note: str
    based_on: str
    created_by: str
    created_at: Any


@dataclass(frozen=True)
class RuleSetView:
    ruleset: RuleSet
    bundled: bool
    seq: int | None
    latest_seq: int | None
    versions: list[VersionInfo]
    unconfirmed: tuple[UnconfirmedRule, ...]
    confirmations: list[dict[str, Any]]
    active_for: str | None
    approvals: list[dict[str, Any]] = field(default_factory=list)


@cache
def _bundled(ruleset_id: str) -> RuleSet:
    """Bundled rule sets are immutable: load and validate each once per process."""
    return load_bundled_ruleset(ruleset_id)


@lru_cache(maxsize=16)
def _parsed(document: str) -> RuleSet:
    """A clinic copy's stored document, parsed once per process (keyed by its text, so two
    databases' copies of one id never share an entry)."""
    return load_ruleset(document)


def active_ruleset(s: Session, treatment: str) -> RuleSet:
    """The clinic's rule set for ``treatment`` now, read in the caller's transaction: the one
    :meth:`RuleSetService.active_in` gives, for code that has no service (the chain's gates)."""
    if treatment not in TREATMENTS:
        raise InvalidInput(f"treatment must be one of {', '.join(TREATMENTS)}")
    chosen = s.execute(select(ActiveRuleSet.ruleset_id).where(
        ActiveRuleSet.treatment == treatment)).scalar_one_or_none() or DEFAULT_ACTIVE[treatment]
    if chosen in BUNDLED_IDS:
        return _bundled(chosen)
    document = s.execute(select(RuleSetVersion.document).where(
        RuleSetVersion.ruleset_id == chosen).order_by(RuleSetVersion.seq.desc()).limit(1)
    ).scalar_one_or_none()
    if document is None:
        raise NotFound("no such rule set")
    return _parsed(document)


def _bad(exc: ClinicalInputError) -> InvalidInput:
    return InvalidInput(" ".join(str(exc).split()))


class RuleSetService:
    """Read-only bundled sets, versioned clinic copies and the clinic's active choice."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._cache: dict[tuple[str, int], RuleSet] = {}

    # --- permissions --------------------------------------------------------------------
    def _view_work(self, actor: Actor, action: str) -> UnitOfWork:
        """Rule sets are read by rule managers and prescribers (a denial names prescribe)."""
        perm = Perm.RULES_MANAGE if allowed(actor, Perm.RULES_MANAGE) else Perm.PRESCRIBE
        return self.ctx.unit_of_work(actor, action, perm=perm)

    # --- loading ------------------------------------------------------------------------
    def _latest_row(self, s: Session, ruleset_id: str) -> RuleSetVersion | None:
        return s.execute(
            select(RuleSetVersion).where(RuleSetVersion.ruleset_id == ruleset_id)
            .order_by(RuleSetVersion.seq.desc()).limit(1)
        ).scalar_one_or_none()

    def _from_row(self, row: RuleSetVersion) -> RuleSet:
        key = (row.ruleset_id, row.seq)
        if key not in self._cache:
            self._cache[key] = load_ruleset(row.document)
        return self._cache[key]

    def _load(self, s: Session, ruleset_id: str,
              seq: int | None = None) -> tuple[RuleSet, int | None]:
        if ruleset_id in BUNDLED_IDS:
            return _bundled(ruleset_id), None
        if seq is None:
            row = self._latest_row(s, ruleset_id)
        else:
            row = s.execute(select(RuleSetVersion).where(
                RuleSetVersion.ruleset_id == ruleset_id, RuleSetVersion.seq == seq)
            ).scalar_one_or_none()
        if row is None:
            raise NotFound("no such rule set")
        return self._from_row(row), row.seq

    def _active_ids(self, s: Session) -> dict[str, str]:
        chosen = dict(DEFAULT_ACTIVE)
        for row in s.execute(select(ActiveRuleSet)).scalars():
            chosen[row.treatment] = row.ruleset_id
        return chosen

    def active_in(self, s: Session, treatment: str) -> RuleSet:
        """The clinic's rule set for ``treatment`` (inside the caller's transaction)."""
        return active_ruleset(s, treatment)

    # --- reading ------------------------------------------------------------------------
    def list(self, actor: Actor, limit: int | None = None,
             offset: int = 0) -> Paged[RuleSetSummary]:
        """The bundled sets (from files) then the clinic's (by id); windowed in Python."""
        with self._view_work(actor, "ruleset.list") as uow:
            s = uow.session
            active = {v: k for k, v in self._active_ids(s).items()}
            out = []
            for rid in BUNDLED_IDS:
                rs = _bundled(rid)
                out.append(RuleSetSummary(rid, rs.title, rs.treatment, rs.version, rs.ref, True,
                                          1, active.get(rid), len(list_unconfirmed(rs))))
            counts = dict(s.execute(select(RuleSetVersion.ruleset_id, func.count())
                                    .group_by(RuleSetVersion.ruleset_id)).all())
            for rid in sorted(counts):
                rs, _ = self._load(s, rid)
                out.append(RuleSetSummary(rid, rs.title, rs.treatment, rs.version, rs.ref, False,
                                          int(counts[rid]), active.get(rid),
                                          len(list_unconfirmed(rs))))
            uow.audit()
            return page_list(out, limit, offset)

    def view(self, actor: Actor, ruleset_id: str, seq: int | None = None) -> RuleSetView:
        with self._view_work(actor, "ruleset.view") as uow:
            s = uow.session
            rs, at_seq = self._load(s, ruleset_id, seq)
            rows = s.execute(select(RuleSetVersion, User.username)
                             .outerjoin(User, User.id == RuleSetVersion.created_by)
                             .where(RuleSetVersion.ruleset_id == ruleset_id)
                             .order_by(RuleSetVersion.seq.desc())).all()
            versions = [VersionInfo(r.seq, r.version, f"{r.ruleset_id}@{r.version}",
                                    r.change_note, r.based_on, name or "system", r.created_at)
                        for r, name in rows]
            confirmations = [
                {"version": c.version, "path": c.path, "by": c.confirmed_by_name,
                 "at": c.confirmed_at}
                for c in s.execute(select(RuleConfirmation).where(
                    RuleConfirmation.ruleset_id == ruleset_id).order_by(RuleConfirmation.id.desc())
                ).scalars()]
            active = {v: k for k, v in self._active_ids(s).items()}
            approvals = [
                {"version": a.version, "action": a.action, "by": a.approved_by_name,
                 "at": a.approved_at, "loosened": json.loads(a.loosened_json)}
                for a in s.execute(select(RuleSetApproval).where(
                    RuleSetApproval.ruleset_id == ruleset_id).order_by(
                    RuleSetApproval.id.desc())).scalars()]
            uow.audit(detail=rs.ref)
            return RuleSetView(rs, ruleset_id in BUNDLED_IDS, at_seq,
                               versions[0].seq if versions else None, versions,
                               list_unconfirmed(rs), confirmations, active.get(ruleset_id),
                               approvals)

    def unconfirmed_report(self, actor: Actor, limit: int | None = None,
                           offset: int = 0) -> Paged[dict[str, Any]]:
        """Every grade-U rule not yet confirmed, in the active sets and every clinic copy."""
        with self.ctx.unit_of_work(actor, "ruleset.unconfirmed",
                                   perm=Perm.RULES_MANAGE) as uow:
            s = uow.session
            active = self._active_ids(s)
            ids = list(dict.fromkeys([*active.values(), *s.execute(
                select(RuleSetVersion.ruleset_id).distinct()).scalars()]))
            out = []
            for rid in ids:
                rs, _ = self._load(s, rid)
                for u in list_unconfirmed(rs):
                    out.append({"rule_set": rs.ref, "ruleset_id": rid,
                                "bundled": rid in BUNDLED_IDS,
                                "active": rid in active.values(), "path": u.path,
                                "value": u.value, "unit": u.unit, "source": u.source,
                                "note": u.note})
            uow.audit(detail=f"{len(out)} unconfirmed")
            return page_list(out, limit, offset)

    # --- writing ------------------------------------------------------------------------
    def _add_version(self, uow: UnitOfWork, doc: dict[str, Any], note: str,
                     based_on: str, expected_seq: int | None) -> RuleSet:
        s, rid = uow.session, doc["id"]
        latest = self._latest_row(s, rid)
        current = latest.seq if latest else 0
        if expected_seq is not None and expected_seq != current:
            raise Conflict(f"rule set {rid} changed since you opened it (you edited version "
                           f"{expected_seq}, it is now version {current}); reload and apply "
                           "your changes again")
        seq = current + 1
        doc = dict(doc, version=str(seq))
        try:
            rs = load_ruleset(doc)
        except ClinicalInputError as exc:
            raise _bad(exc) from exc
        row = RuleSetVersion(ruleset_id=rid, seq=seq, version=rs.version, treatment=rs.treatment,
                             title=rs.title[:200], based_on=based_on[:110],
                             change_note=note[:500], document=rs.document,
                             created_by=uow.actor.user_id, created_at=uow.now)
        s.add(row)
        s.flush()
        uow.audit("ruleset.version", detail=f"{rs.ref}: {note}"[:500])
        return rs

    @staticmethod
    def _write(work: UnitOfWork, fn: Callable[[UnitOfWork], RuleSet]) -> RuleSet:
        """Run ``fn`` in the unit; a governance refusal is audited as the unit's action."""
        try:
            with work as uow:
                return fn(uow)
        except IntegrityError as exc:
            raise Conflict("the rule set was changed at the same moment; reload and retry"
                           ) from exc
        except GovernanceRefused as exc:
            work.record_failure("refused", detail=exc.detail[:300])
            raise

    # --- governance: tighten freely; loosening in effect needs a co-signature ---
    @staticmethod
    def _govern(uow: UnitOfWork, candidate: RuleSet, in_effect: RuleSet | None,
                director: tuple[int, str] | None, action: str) -> None:
        """Refuse an incomplete rule set; a loosening of ``in_effect`` needs ``cosign`` from
        another user with the medical-director flag (recorded in ``ruleset_approvals``)."""
        decision: GovernanceDecision = check_change(candidate, in_effect)
        if decision.blocked:
            raise GovernanceRefused(decision.findings[0].message + " (nothing was saved)",
                                    f"{candidate.ref}: hard limits missing")
        if not decision.needs_cosign:
            return
        message = next(f.message for f in decision.findings if f.rule == "ruleset.loosened")
        if director is None:
            raise CosignRequired(message + " (nothing was saved)",
                                 f"{candidate.ref}: loosening without a co-signature")
        uow.session.add(RuleSetApproval(
            ruleset_id=candidate.id, version=candidate.version, action=action,
            loosened_json=json.dumps([x.as_dict() for x in decision.loosened]),
            requested_by=uow.actor.user_id, approved_by=director[0],
            approved_by_name=director[1][:200], approved_at=uow.now))
        uow.audit("ruleset.loosen",
                  detail=f"{candidate.ref} {action}, co-signed by {director[1]}: "
                  + "; ".join(x.describe() for x in decision.loosened)[:300])

    def _director(self, actor: Actor, cosign: Cosign, action: str) -> tuple[int, str] | None:
        """Check the co-signer before any write transaction (None: no co-signer given)."""
        from ketaclinic.services.accounts.auth import AuthService
        from ketaclinic.services.errors import NotAuthenticated

        if not cosign:
            return None
        try:
            info = AuthService(self.ctx).reauthenticate(cosign.username, cosign.password)
        except NotAuthenticated as exc:
            raise CosignRequired("co-signer: the username or password was not accepted "
                                 "(nothing was saved)",
                                 "co-signer credentials were not accepted") from exc
        if info.id == actor.user_id:
            raise CosignRequired("co-signer: a second person must co-sign, not you",
                                 "co-signed by the requester")
        if not info.medical_director:
            raise CosignRequired(f"co-signer: {info.username} does not have the "
                                 "medical-director flag", "co-signer is not a medical director")
        return info.id, f"{info.full_name} ({info.username})"

    def _as_next(self, s: Session, rs: RuleSet) -> RuleSet:
        """``rs`` under the version it will be stored as (the next sequence number)."""
        latest = self._latest_row(s, rs.id)
        return load_ruleset(dict(rs.to_dict(), version=str((latest.seq if latest else 0) + 1)))

    def _checked_director(self, work: UnitOfWork, cosign: Cosign,
                          action: str) -> tuple[int, str] | None:
        try:
            return self._director(work.actor, cosign, action)
        except GovernanceRefused as exc:
            work.record_failure("denied", detail=exc.detail)
            raise

    def _in_effect_for(self, s: Session, ruleset_id: str) -> RuleSet | None:
        """The latest version of ``ruleset_id`` if it is an active set (else None)."""
        if ruleset_id not in self._active_ids(s).values():
            return None
        try:
            return self._load(s, ruleset_id)[0]
        except NotFound:
            return None

    def copy(self, actor: Actor, source_id: str, new_id: str, title: str = "",
             note: str = "") -> RuleSet:
        """Copy a bundled set or a clinic copy under a new id (version 1)."""
        unit = self.ctx.unit_of_work(actor, "ruleset.copy", perm=Perm.RULES_MANAGE)
        new_id = new_id.strip().lower()
        if not ID_RE.match(new_id):
            raise InvalidInput("new id must be 2–59 characters: lower-case letters, digits, '-'")
        if new_id in BUNDLED_IDS:
            raise Conflict(f"{new_id} is a bundled rule set; choose another id")

        def work(uow: UnitOfWork) -> RuleSet:
            if self._latest_row(uow.session, new_id) is not None:
                raise Conflict(f"a rule set with id {new_id} already exists")
            src, _ = self._load(uow.session, source_id)
            doc = src.to_dict()
            doc["id"] = new_id
            if title.strip():
                doc["title"] = title.strip()[:200]
            return self._add_version(uow, doc, note or f"copied from {src.ref}", src.ref, None)

        return self._write(unit, work)

    def import_document(self, actor: Actor, text: str, note: str = "",
                        cosign: Cosign = Cosign()) -> RuleSet:
        """Import a rule-set file (validated by the clinical core) as a new copy or version.
        An incomplete rule set (hard limits missing) is refused; a new version of an active
        set that loosens a hard limit needs a medical director's co-signature."""
        unit = self.ctx.unit_of_work(actor, "ruleset.import", perm=Perm.RULES_MANAGE)
        if len(text) > MAX_DOCUMENT_CHARS:
            raise InvalidInput("the rule-set file is too large")
        try:
            rs = load_ruleset(text)
        except ClinicalInputError as exc:
            raise _bad(exc) from exc
        if rs.id in BUNDLED_IDS:
            raise InvalidInput(f"id {rs.id} is a bundled rule set, which is read-only; change "
                               "the document's id to import it as a clinic copy")
        if not ID_RE.match(rs.id):
            raise InvalidInput("id must be 2–59 characters: lower-case letters, digits, '-'")
        director = self._checked_director(unit, cosign, "import")

        def work(uow: UnitOfWork) -> RuleSet:
            before = self._in_effect_for(uow.session, rs.id)
            self._govern(uow, self._as_next(uow.session, rs), before, director, "import")
            return self._add_version(uow, rs.to_dict(), note or "imported from a file",
                                     "import", None)

        return self._write(unit, work)

    def edit_values(self, actor: Actor, ruleset_id: str, changes: dict[str, str], note: str,
                    expected_seq: int | None, cosign: Cosign = Cosign()) -> RuleSet:
        """Change numeric values (``parameters.X`` or ``dose_limits.ROUTE.X``) as a new version.

        A changed value loses its medical-director confirmation.
        """
        unit = self.ctx.unit_of_work(actor, "ruleset.edit", perm=Perm.RULES_MANAGE)
        if ruleset_id in BUNDLED_IDS:
            raise InvalidInput("bundled rule sets are read-only; copy it first")
        if not note.strip():
            raise InvalidInput("change note: say why the values changed")
        director = self._checked_director(unit, cosign, "edit")

        def work(uow: UnitOfWork) -> RuleSet:
            s = uow.session
            rs, _ = self._load(s, ruleset_id)
            doc, changed = rs.to_dict(), []
            for path, text in changes.items():
                entry = _entry_at(doc, path)
                try:
                    value = parse_number(path, text)
                except ClinicalInputError as exc:
                    raise _bad(exc) from exc
                if value != entry["value"]:
                    entry["value"] = int(value) if value.is_integer() and isinstance(
                        entry["value"], int) else value
                    entry["confirmed_by"], entry["confirmed_at"] = None, None
                    changed.append(path)
            if not changed:
                raise InvalidInput("no value changed")
            try:
                candidate = load_ruleset(doc)
            except ClinicalInputError as exc:
                raise _bad(exc) from exc
            self._govern(uow, self._as_next(s, candidate),
                         self._in_effect_for(s, ruleset_id), director, "edit")
            return self._add_version(uow, doc, f"{note.strip()} ({', '.join(changed)})",
                                     rs.ref, expected_seq)

        return self._write(unit, work)

    def confirm(self, actor: Actor, ruleset_id: str, path: str,
                expected_seq: int | None = None) -> RuleSet:
        """The medical director (a prescriber) confirms one grade-U rule: who and when."""
        unit = self.ctx.unit_of_work(actor, "ruleset.confirm", perm=Perm.PRESCRIBE)
        if ruleset_id in BUNDLED_IDS:
            raise InvalidInput("bundled rule sets are read-only; copy it, then confirm the copy")
        now = unit.now

        def work(uow: UnitOfWork) -> RuleSet:
            s = uow.session
            rs, _ = self._load(s, ruleset_id)
            user = s.get(User, actor.user_id) if actor.user_id else None
            who = f"{user.full_name} ({user.username})" if user else actor.username
            try:
                confirmed = confirm_rule(rs, path, who, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            except ClinicalInputError as exc:
                raise _bad(exc) from exc
            new = self._add_version(uow, confirmed.to_dict(), f"confirmed {path}", rs.ref,
                                    expected_seq)
            s.add(RuleConfirmation(ruleset_id=ruleset_id, version=new.version, path=path[:200],
                                   confirmed_by=actor.user_id, confirmed_by_name=who[:200],
                                   confirmed_at=now))
            return new

        return self._write(unit, work)

    def set_active(self, actor: Actor, treatment: str, ruleset_id: str,
                   cosign: Cosign = Cosign()) -> RuleSet:
        """Make ``ruleset_id`` the clinic's set for ``treatment``: never an incomplete set; one
        that loosens a hard limit of the set in effect needs a medical director's co-sign."""
        unit = self.ctx.unit_of_work(actor, "ruleset.activate", perm=Perm.RULES_MANAGE)
        if treatment not in TREATMENTS:
            raise InvalidInput(f"treatment must be one of {', '.join(TREATMENTS)}")
        director = self._checked_director(unit, cosign, "activate")

        def work(uow: UnitOfWork) -> RuleSet:
            s = uow.session
            rs, _ = self._load(s, ruleset_id)
            if rs.treatment != treatment:
                raise InvalidInput(f"{rs.ref} is for {rs.treatment}, not {treatment}")
            current = self._load(s, self._active_ids(s)[treatment])[0]
            self._govern(uow, rs, current, director, "activate")
            row = s.get(ActiveRuleSet, treatment)
            if row is None:
                s.add(ActiveRuleSet(treatment=treatment, ruleset_id=ruleset_id,
                                    set_by=actor.user_id, set_at=uow.now))
            else:
                row.ruleset_id, row.set_by, row.set_at = ruleset_id, actor.user_id, uow.now
            uow.audit(detail=f"{treatment}: {rs.ref}")
            return rs

        return self._write(unit, work)


def _entry_at(doc: dict[str, Any], path: str) -> dict[str, Any]:
    parts = path.split(".")
    node: Any = doc
    if parts[0] not in ("parameters", "dose_limits") or len(parts) not in (2, 3):
        raise InvalidInput(f"{path}: only parameters and dose limits can be edited here; "
                           "import a file for other changes")
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            raise InvalidInput(f"{path}: no such rule")
        node = node[part]
    if not isinstance(node, dict) or isinstance(node.get("value"), bool) or not isinstance(
            node.get("value"), int | float):
        raise InvalidInput(f"{path}: not a numeric rule")
    return node


def document_text(rs: RuleSet) -> str:
    """Pretty JSON of a rule set, for download and the import editor."""
    return json.dumps(rs.to_dict(), indent=2, ensure_ascii=False, sort_keys=False)
