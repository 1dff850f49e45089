"""What every benchmark script does with its report: print it and write it to its file."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out) -> str:
    """Join ``lines`` into the report, print it, write it to ``out`` (its directory is
    created); returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
