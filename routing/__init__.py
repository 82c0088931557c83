"""The domain of calls: who takes a call, and how each call, callback and agent changes state.

- who takes a call: `policy.py` (the pure decision), `router.py` (snapshot, rank, reserve), `presence.py` (the
  Redis edge, atomic Lua scripts), `directory.py` (who is calling, from the number);
- each entity's transitions, the only code that changes its state: `call_records.py` (the call log),
  `callbacks.py` (promises), `agents.py` (an agent's presence), `roster.py` (who works here);
- the lives of calls, one method per Twilio event: `inbound.py`, `callback_calls.py`; callbacks handed to
  agents: `dispatch.py` (with the pure `callback_policy.py`), their RQ jobs: `callback_jobs.py`;
- what Twilio is told: `twiml.py`, `prompts.py`; agents held by calls that are over: `reconcile.py`.
"""
