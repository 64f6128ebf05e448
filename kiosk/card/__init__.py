"""The E-KTP card as Pillow draws it from a record (no printer knowledge)."""
