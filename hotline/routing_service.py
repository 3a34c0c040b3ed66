"""Routing wired into intake: classify, place, catalogue, then dispatch or queue.

Holds the process's live model and gazetteer. The live model version is read
from the database at most once a minute, so every web and worker process
picks up a newly trained model within a minute; the swap replaces one
reference, so a request sees the old model or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from tortoise.transactions import in_transaction

from cases.actors import SYSTEM
from cases.errors import CaseError
from cases.lifecycle import SlaContext, perform
from cases.models import Case, Unit
from hotline.divisions import division_rows
from hotline.settings import Settings
from routing import text as routing_text
from routing.catalogue_store import load_rules, territory_map
from routing.decision import CategoryGuess, Decision, PlaceGuess, decide
from routing.duplicates import Candidate, find_duplicates, issue_words
from routing.gazetteer import Gazetteer
from routing.learning import record_dispatch
from routing.models import ModelVersion, RoutingDecision

log = logging.getLogger("hotline.routing")
REFRESH_SECONDS = 60


def classifier_from_bytes(blob: bytes):
    """Load a model stored in the database (the same .npz file format as the shipped one)."""
    import tempfile

    from routing.classifier import Classifier

    with tempfile.NamedTemporaryFile(suffix=".npz") as f:
        f.write(blob)
        f.flush()
        return Classifier.load(f.name)


@dataclass
class _Live:
    classifier: object  # routing.classifier.Classifier
    version: str
    checked_at: float


class RoutingService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.threshold = settings.routing_threshold
        self.gazetteer: Gazetteer | None = None
        self._live: _Live | None = None
        self._place_words: set[str] = set()
        self._lock = asyncio.Lock()
        self._catalogue: tuple[float, list, dict] | None = None

    async def start(self) -> None:
        """Build the gazetteer, the tokenizer and the model once (a few seconds, off the event loop)."""
        rows = division_rows(self.settings.region, self.settings.data_dir)
        self.gazetteer = await asyncio.to_thread(Gazetteer.from_rows, rows, self.settings.region)
        units = await Unit.all().values_list("name", flat=True)
        place_words = self.gazetteer.words()
        self._place_words = set(place_words)
        await asyncio.to_thread(routing_text.configure, [*place_words, *units])
        await self.classifier()

    async def classifier(self) -> _Live:
        live = self._live
        if live is not None and time.monotonic() - live.checked_at < REFRESH_SECONDS:
            return live
        async with self._lock:
            live = self._live
            if live is not None and time.monotonic() - live.checked_at < REFRESH_SECONDS:
                return live
            from routing.classifier import Classifier, default_model_path  # noqa: F811

            row = await ModelVersion.filter(is_live=True).order_by("-id").only("id", "version").first()
            if live is not None and row is not None and row.version == live.version:
                live.checked_at = time.monotonic()
                return live
            if row is not None:
                blob = (await ModelVersion.get(id=row.id)).blob
                clf = await asyncio.to_thread(classifier_from_bytes, bytes(blob))
            elif live is not None and live.version == "default":
                live.checked_at = time.monotonic()
                return live
            else:
                clf = await asyncio.to_thread(Classifier.load, default_model_path())
            self._live = _Live(clf, row.version if row else "default", time.monotonic())
            log.info("routing model %s is live", self._live.version)
            return self._live

    async def _rules(self):
        cached = self._catalogue
        if cached is None or time.monotonic() - cached[0] > REFRESH_SECONDS:
            cached = (time.monotonic(), await load_rules(), await territory_map())
            self._catalogue = cached
        return cached[1], cached[2]

    def invalidate_catalogue(self) -> None:
        self._catalogue = None

    async def suggest(self, *, title: str, content: str, address: str, request_type: str,
                      district_code: str = "", street_code: str = "") -> tuple[Decision, str, list[str]]:
        live = await self.classifier()
        text = f"{title}\n{content}"
        pred = live.classifier.predict(text)
        guesses = [
            CategoryGuess(label, prob, tuple(pred.top_words.get(label, ())[:8]))
            for label, prob in pred.top3
        ]
        if guesses:
            # The classifier's own confidence is calibrated for messages from
            # classes it was never taught; the raw top probability is not.
            top = guesses[0]
            guesses[0] = CategoryGuess(top.label, min(top.probability, pred.confidence), top.words)
        if district_code:
            place = PlaceGuess(district_code, street_code, 1.0)
        else:
            found = self.gazetteer.resolve(f"{address}\n{text}")
            place = PlaceGuess(found.county_code or "", found.street_code or "", found.confidence)
        rules, territory = await self._rules()
        decision = decide(guesses, place, rules, territory, text=text, request_type=request_type,
                          threshold=self.threshold)
        keywords = issue_words(routing_text.tokens(text, max_chars=2000), self._place_words)
        return decision, pred.version, keywords

    async def route_case(self, case: Case, sla_context: SlaContext) -> Decision:
        """Classify a new case, record the decision, then dispatch it (直派) or queue it."""
        decision, version, keywords = await self.suggest(
            title=case.title, content=case.content, address=case.address,
            request_type=case.request_type, district_code=case.district_code, street_code=case.street_code,
        )
        # One transaction: a crash or a lost race leaves the case untouched and
        # still owed a decision, never classified-but-not-dispatched.
        async with in_transaction():
            await perform(case.number, "classify", SYSTEM, {
                "category_l1": decision.category,
                "district_code": decision.place.district_code,
                "street_code": decision.place.street_code if decision.place.district_code else "",
                "confidence": decision.confidence,
                "model_version": version[:32],
                "keywords": [k[:20] for k in dict.fromkeys(keywords)][:60],
                "alternatives": [a.to_dict() for a in decision.alternatives],
                "note": decision.reason[:1000],
            }, sla_context=sla_context)
            await RoutingDecision.create(
                case_id=case.id, model_version=version[:32], category=decision.category,
                confidence=decision.confidence, district_code=decision.place.district_code,
                street_code=decision.place.street_code, place_confidence=decision.place.confidence,
                lead_unit_id=decision.route.lead_unit_id, co_unit_ids=list(decision.route.co_unit_ids),
                rule_id=decision.route.rule_id, alternatives=[a.to_dict() for a in decision.alternatives],
                auto_dispatched=decision.auto, reason=decision.reason[:300],
            )
            try:
                if decision.auto:
                    await perform(case.number, "dispatch", SYSTEM, {
                        "lead_unit_id": decision.route.lead_unit_id,
                        "co_unit_ids": list(decision.route.co_unit_ids),
                        "note": decision.reason[:1000],
                    }, sla_context=sla_context)
                else:
                    await perform(case.number, "accept", SYSTEM, {"note": decision.reason[:1000]},
                                  sla_context=sla_context)
            except CaseError as exc:
                # Someone acted on the case meanwhile (an agent answered it on the spot):
                # their move stands, and the decision stays recorded as a suggestion.
                log.info("routing left %s alone: %s", case.number, exc.message)
        return decision

    async def duplicates(self, case: Case) -> list[Candidate]:
        return await find_duplicates(
            content=f"{case.title} {case.content}", street_code=case.street_code,
            district_code=case.district_code, category_l1=case.category_l1,
            tokenize=lambda t: routing_text.tokens(t, max_chars=2000), place_words=self._place_words,
            now=case.created_at, exclude_number=case.number,
        )

    @staticmethod
    async def learn_from_dispatch(case: Case) -> None:
        if case.lead_unit_id:
            await record_dispatch(case.id, case.lead_unit_id, case.category_l1)


