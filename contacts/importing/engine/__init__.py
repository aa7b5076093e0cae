"""The import itself: rows are converted in Python (in worker processes for big files),
copied into a temporary staging table with COPY, and merged into contacts with a handful of
set-based statements per chunk, in parallel lanes on their own connections.

Each lane's part of a chunk is one transaction that also lists the part as done on the job,
so a job whose worker died resumes with exactly the missing parts and nothing is written
twice.

Where things are:
- plan.py: what a run is, fixed before its first row: the job's Plan (columns written,
  defaults, staging types), whose contacts its author may change, chunks and their Parts;
- pipeline.py: Importer, which reads the file, converts chunks (worker processes or a
  thread) and runs the merge lanes, one transaction per part;
- match.py: a part's rows staged (COPY) and matched to contacts and companies;
- merge.py: the writes (insert, update, tags, notes, timeline, audit) and the report rows.
"""

from .pipeline import ImportCancelled, Importer
from .plan import CONTACT_COLUMNS

__all__ = ["CONTACT_COLUMNS", "ImportCancelled", "Importer"]
