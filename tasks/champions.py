"""Which version is live per slot, verified, for the champion stage of the training tasks."""

from __future__ import annotations

import json

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pipelines.models.champion import FALLBACK, Champion, ChampionKind
from pipelines.models.specs import SPECS
from tasks.context import RunContext


def challenged_slots() -> list[str]:
    """The slots whose trainers run a champion stage (a spec that names candidates)."""
    return [name for name, spec in SPECS.items() if spec.candidates]


@task(name="read_champions", cache_policy=NO_CACHE)
def read_champions(ctx: RunContext) -> dict[str, Champion]:
    """Each challenged slot's live version, verified end to end as a bot would (signature,
    manifest, file digests), its ONNX written under the run folder; the bot's fallback where
    nothing is live or the live version does not verify (a bot would refuse it too)."""
    from pipelines.registry.verify import has_pointer, verify_model

    log = get_run_logger()
    out: dict[str, Champion] = {}
    for slot in challenged_slots():
        if not has_pointer(ctx.store, slot):
            out[slot] = FALLBACK
            log.info("%s champion: nothing is live, the bot's fallback", slot)
            continue
        try:
            vv = verify_model(ctx.store, slot, ctx.keyring, check_freshness=False)
            path = ctx.run_dir / "champions" / slot / "model.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(vv.files[vv.primary_file()])
        except Exception as exc:  # a bot refuses what does not verify: it plays the fallback
            log.warning("%s champion: the live version does not verify (%s): fallback", slot, exc)
            out[slot] = Champion("fallback", "fallback", note=f"live version refused: {exc}")
            continue
        lineage = json.loads(vv.manifest_bytes).get("lineage", {})
        candidate = str(lineage.get("candidate", "learned"))
        kind: ChampionKind = "rule" if lineage.get("kind") == "rule" else "learned"
        out[slot] = Champion(candidate, kind, vv.version, path)
        log.info("%s champion: %s (%s), live", slot, out[slot].label, kind)
    return out
