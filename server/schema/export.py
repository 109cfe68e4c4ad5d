"""``python -m server.schema.export`` writes ``schema.graphql`` (what integrators build on)."""

from __future__ import annotations

from pathlib import Path

from server.schema.schema import schema

TARGET = Path(__file__).resolve().parent.parent.parent / "schema.graphql"


def main() -> None:
    TARGET.write_text(schema.as_str() + "\n")
    print(f"wrote {TARGET.name}")


if __name__ == "__main__":
    main()
