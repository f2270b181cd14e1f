"""Peak RSS of each index stage on its own (issue 20: create_index of 1M short texts under 8 GB).

`prepare` builds a map once (as benchmarks.static_million does: the static model, layout, topics, no
duplicates; optionally with few layout epochs) in a kept ATLAS_HOME, sampling the process's RSS
every second; `stage` then reruns one stage's work (`build_neighbour_graph`, `build_projection` or
`build_topics`, the latter without the phrase model: names from keywords) in a fresh process on the
inputs read back as the IO manager reads them, RSS sampled every 0.2 s with named marks, so a
change to one stage is measured without a whole create_index. The layout's SGD allocates nothing
per epoch, so a few epochs give the stage's peak. To compare with the code before a change, run the
same command from an export of that commit (`git archive <commit> | tar -x -C /tmp/before`, then
`cd /tmp/before && /work/main/.venv/bin/python -m benchmarks.stage_memory stage ...`).

    .venv/bin/python -m benchmarks.stage_memory prepare /tmp/atlas-stage-home [rows] [layout epochs]
    .venv/bin/python -m benchmarks.stage_memory stage /tmp/atlas-stage-home neighbour_graph|projection|topics [epochs] [module.NAME=json ...]

`timeline` is the head-to-head's atlas side with the default model (Stack Overflow titles, fresh
ATLAS_HOME): RSS every 0.25 s through one create_index, the peak of each Dagster step (from the
instance's step events), then what reading `map.embeddings.latent` back adds:

    .venv/bin/python -m benchmarks.stage_memory timeline /tmp/atlas-timeline-home 50000

Prints JSON (nothing is written to benchmarks/results: the figures go in docs/models.md).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

DATASET = "bench/stage-memory"


class Sampler:
    """VmRSS every `interval` s, with named marks; peak is VmHWM."""

    def __init__(self, interval: float) -> None:
        from benchmarks.memory import reset_peak_rss

        reset_peak_rss()
        self.started = time.perf_counter()
        self.samples: list[tuple[float, float]] = []
        self.marks: list[tuple[str, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _now(self) -> tuple[float, float]:
        from benchmarks.memory import status_mib

        return round(time.perf_counter() - self.started, 1), round(status_mib("VmRSS"), 1)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append(self._now())

    def mark(self, name: str) -> None:
        self.marks.append((name, *self._now()))

    def stop(self) -> dict:
        from benchmarks.memory import status_mib

        self._stop.set()
        self._thread.join()
        return {"peak_rss_mib": round(status_mib("VmHWM"), 1), "marks": self.marks,
                "max_rss_sampled_mib": max((rss for _, rss in self.samples), default=0.0),
                "timeline_mib": self.samples[:: max(1, len(self.samples) // 60)]}


def prepare(home: str, rows: int, epochs: int | None) -> dict:
    import pandas as pd

    from atlas_assets import AtlasDataset
    from benchmarks.static_million import STATIC, synthetic_texts

    texts = synthetic_texts(rows)
    frame = pd.DataFrame({"id": [f"t{i}" for i in range(rows)], "text": texts})
    del texts
    dataset = AtlasDataset(DATASET, unique_id_field="id")
    dataset.add_data(frame)
    del frame
    sampler = Sampler(1.0)
    start = time.perf_counter()
    dataset.create_index(name="fast", indexed_field="text", embedding_model=STATIC, duplicate_detection=False,
                         projection={"n_epochs": epochs} if epochs else None)
    return {"rows": rows, "home": home, "epochs": epochs, "create_index_s": round(time.perf_counter() - start, 1), **sampler.stop(),
            "load": list(os.getloadavg())}


def stage(name: str, epochs: int | None = None, settings: tuple[str, ...] = ()) -> dict:
    """One stage's work on the prepared home; epochs: the layout's SGD epochs (default: the stage's
    own; the SGD allocates nothing per epoch, so a few give the stage's peak in a fraction of the time)."""
    from atlas_assets import AtlasDataset
    from atlas_assets.pipeline.assets import neighbour_graph, projection, topics
    from atlas_assets.pipeline.spec import IndexSpec

    dataset = AtlasDataset(DATASET)
    store = dataset.store
    record = dataset._record()
    if not record.indices:  # prepare was stopped after the stages needed here: register its index again
        from atlas_assets.client.index_request import IndexRequest
        from benchmarks.static_million import STATIC

        folder = next(Path(os.environ["ATLAS_HOME"]).glob(f"datasets/{DATASET}/indices/*"))
        request = IndexRequest(name="fast", indexed_field="text", embedding_model=STATIC, duplicate_detection=False)
        index = request.resolve(record).model_copy(update={"id": folder.name})
        record = store.update_record(record.organisation, record.slug,
                                     lambda current: current.model_copy(update={"indices": [index]}))
    spec = IndexSpec.of(record, record.indices[0])
    for setting in settings:  # e.g. knn.NNDESCENT_MAX_CANDIDATES=40: a variant measured before it is made
        import importlib

        target, value = setting.split("=")
        module, attribute = target.rsplit(".", 1)
        setattr(importlib.import_module(f"atlas_assets.compute.{module}"), attribute, json.loads(value))
    if epochs is not None:
        from atlas_assets.compute import layout

        resolve = layout.resolve_layout_params
        layout.resolve_layout_params = lambda *args, **kwargs: layout.with_epochs(resolve(*args, **kwargs), epochs)
    outputs = spec.outputs
    load_before = list(os.getloadavg())
    sampler = Sampler(0.2)
    start = time.perf_counter()
    embeddings = outputs.read_embeddings(outputs.embedded_batches())
    sampler.mark("embeddings read")
    if name == "neighbour_graph":
        _, metadata = neighbour_graph.build_neighbour_graph(store, spec, embeddings, None)
    else:
        graph = outputs.read("neighbour_graph")
        sampler.mark("graph read")
        if name == "projection":
            output, metadata = projection.build_projection(spec, graph, embeddings, None, True)
            if outputs.read("projection", columns=["_row_id"]) is None:  # for the topics stage
                outputs.write("projection", output)
        else:
            xy = outputs.read("projection")
            _, metadata = topics.build_topics(store, spec, graph, xy, embeddings, None, True, None)
    sampler.mark("built")
    seconds = round(time.perf_counter() - start, 1)
    return {"stage": name, "seconds": seconds, "metadata": {k: v for k, v in metadata.items() if isinstance(v, (int, float, str))},
            **sampler.stop(), "load_before": load_before, "load_after": list(os.getloadavg())}


def timeline(rows: int) -> dict:
    import dagster as dg

    from atlas_assets import AtlasDataset
    from benchmarks.end_to_end import _titles
    from benchmarks.memory import status_mib
    from resources.instance import get_instance

    frame = _titles(rows)
    dataset = AtlasDataset("bench/timeline", unique_id_field="id")
    dataset.add_data(frame)
    sampler = Sampler(0.25)
    wall_at_start = time.time() - (time.perf_counter() - sampler.started)
    atlas_map = dataset.create_index(name="titles", indexed_field="text")
    sampler.mark("create_index returned")
    instance = get_instance()
    starts: dict[str, float] = {}
    steps: dict[str, dict] = {}
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}):
            step, at = record.dagster_event.step_key, record.timestamp - wall_at_start
            if record.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[step] = at
            elif step in starts:
                inside = [rss for when, rss in sampler.samples if starts[step] <= when <= at]
                steps[step.rsplit("__", 1)[-1]] = {"seconds": round(at - starts[step], 1),
                                                   "max_rss_sampled_mib": max(inside, default=None)}
    before = status_mib("VmRSS")
    vectors = atlas_map.embeddings.latent
    sampler.mark("latent read")
    result = {"rows": rows, "vectors_mib": round(vectors.nbytes / 2**20, 1), "steps": steps,
              "latent_read_added_mib": round(status_mib("VmRSS") - before, 1), **sampler.stop()}
    result.pop("timeline_mib")
    return result


def main(argv: list[str]) -> None:
    command, home = argv[0], argv[1]
    os.environ["ATLAS_HOME"] = home
    os.environ["DAGSTER_HOME"] = os.path.join(home, "dagster")
    os.environ.setdefault("ATLAS_MODELS", os.path.expanduser("~/.atlas/models"))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    if command == "timeline":
        result = timeline(int(argv[2]) if len(argv) > 2 else 50_000)
    elif command == "prepare":
        result = prepare(home, int(argv[2]) if len(argv) > 2 else 1_000_000, int(argv[3]) if len(argv) > 3 else None)
    else:
        settings = tuple(arg for arg in argv[3:] if "=" in arg)
        epochs = [int(arg) for arg in argv[3:] if "=" not in arg]
        result = stage(argv[2], epochs[0] if epochs else None, settings)
        result["settings"] = settings
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
