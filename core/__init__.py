"""Attendance Desk's domain: bookings, attendance marks, the absence policy and its audit.

Nothing here imports Streamlit, reads the clock or the UI's session: `now` and the actor are parameters,
and the caller owns the transaction.
"""
