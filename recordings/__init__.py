"""Complaint references, acknowledgement audio, recording storage and the audit chain."""
