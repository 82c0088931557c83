"""A complaint's proof: its gap-free reference (`references.py`), flagging (`complaints.py`), the acknowledgement
the caller hears (`acknowledgement.py`), the SMS they keep (`sms.py`), the recording stored by its hash
(`fetch.py`, `storage.py`) and the hash-chained audit log (`audit.py`); `jobs.py` resumes what a lost job left."""
