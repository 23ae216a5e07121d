"""Writing a benchmark's result into the metadata of the model it measured, so the file that ships
says how fast it was, when, and on which CPU (int8 and fp32 speed depend on its instructions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path


def cpu_description() -> dict[str, str]:
    """The CPU's model name and its int8 dot-product instructions (x86 VNNI, Arm dotprod)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cpu": "unknown", "int8_dot_product": "unknown"}
    pairs = (line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    flags = set(fields.get("flags", fields.get("Features", "")).split())
    found = [f for f in ("avx512_vnni", "avx_vnni", "asimddp") if f in flags]
    return {"cpu": fields.get("model name", "unknown"), "int8_dot_product": ", ".join(found) or "none"}


def record_metric(meta_file: Path, key: str, result: dict, command: str, indent: int) -> None:
    """Set ``metrics[key]`` of a model's JSON to ``result`` plus the command, date and CPU."""
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta.setdefault("metrics", {})[key] = result | {
        "command": command, "date": datetime.now(UTC).isoformat(timespec="seconds"), **cpu_description(),
    }
    meta_file.write_text(json.dumps(meta, indent=indent) + "\n", encoding="utf-8")
    print(f"recorded metrics.{key} in {meta_file}")
