"""The core every part stands on: configuration, the database and its models, the vocabulary of states
(`states.py`), the exactly-once unit of work, the URLs Twilio calls, Redis and the job queue, periodic jobs."""
