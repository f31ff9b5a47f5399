"""What is wrong with an import: one ``Problem`` per fault, raised together as ``ImportErrors``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import: where it is and what is wrong."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self):
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = self.message if not self.field else f"{self.field}: {self.message}"
        return f"{where}: {what}"


class ImportErrors(Exception):
    """The directory cannot be imported; ``problems`` lists every reason. Nothing was written."""

    def __init__(self, problems):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))
