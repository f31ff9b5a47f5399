"""Tasks as a directory of YAML files, and back (DESIGN.md, "YAML directory format").

Modules, each one job:

- ``format``: safe YAML loading with bounds (aliases, depth, duplicate keys) and the
  deterministic export style.
- ``records``: tasks and pods as plain records; the one list of a task's fields.
- ``fields`` and ``reader``: reading a task's files into a record, collecting every problem.
- ``scan``: reading a whole directory one task at a time, keeping a small ``TaskEntry`` per
  task (an import streams: records are read again, a chunk at a time, to be written).
- ``plan``: what an import would change (``ImportPlan``), and writing it (``write_plan``,
  run by the rule runner through ``workflow.import_plan``).
- ``export``: writing a directory; ``archive``: zip upload and download.
- ``progress``: showing a long run's progress on a text stream.
- ``problems``: ``Problem`` and ``ImportErrors``.
"""

from .archive import export_zip, import_zip
from .export import export_directory, write_directory
from .format import dump_yaml, parse_yaml
from .plan import ImportPlan, import_directory, read_directory, write_plan
from .problems import ImportErrors, Problem
from .progress import Progress
from .records import TASK_KEYS, PodRecord, TaskRecord, load_records

__all__ = [
    "TASK_KEYS",
    "ImportErrors",
    "ImportPlan",
    "PodRecord",
    "Problem",
    "Progress",
    "TaskRecord",
    "dump_yaml",
    "export_directory",
    "export_zip",
    "import_directory",
    "import_zip",
    "load_records",
    "parse_yaml",
    "read_directory",
    "write_directory",
    "write_plan",
]
