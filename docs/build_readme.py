"""Assemble README.md from docs/readme_head.md and the capability sections in docs/sections/ (in reading order).

    python docs/build_readme.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["pipeline", "cli", "genome", "datasets", "models", "mamba2", "hyena", "byom", "pretrain", "finetune",
         "variant_effect",
         "generation"]
LAST = ["developers"]  # after every other section, however many are added


def demote(text: str) -> str:
    """One heading level down (a section's '# Title' becomes '## Title'), leaving code blocks alone."""
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        out.append("#" + line if (not in_code and line.startswith("#")) else line)
    return "\n".join(out).strip() + "\n"


def assemble() -> str:
    """The README's text: the head, then every section in reading order."""
    parts = [(ROOT / "docs" / "readme_head.md").read_text().strip() + "\n"]
    sections = ROOT / "docs" / "sections"
    names = ORDER + sorted(p.stem for p in sections.glob("*.md") if p.stem not in ORDER + LAST) + LAST
    for name in names:
        path = sections / f"{name}.md"
        if path.exists():
            parts.append(demote(path.read_text()))
    return "\n".join(parts)


def main() -> None:
    (ROOT / "README.md").write_text(assemble())


if __name__ == "__main__":
    main()
