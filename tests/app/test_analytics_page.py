"""The Analytics page for both roles: an admin sees every mentor, a mentor only their own sessions.

The app world (tests/app/conftest.py) plus two of Otto's sessions marked by Otto, so the two mentors' numbers
differ everywhere. Over the default 90 days:
- Maria (the `mentor` user): 3 pending sessions (Ana, Ana, Cy) and Cy's session she marked attended.
  Counted rate 0/1, automated rate 0/1.
- Otto: 4 absences stamped System (Ben, Ben, Cy, Cy), Ana's no-show and Ben's attendance marked by Otto.
  Counted rate 1/2, automated rate 5/6.
- Everyone: counted 1/3 = 33.3%, automated 5/7 = 71.4%.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.models import ActorKind
from tests.app.conftest import World, signed_in_as
from tests.factories import add_booking

PAGE = "../pages/analytics.py"
DAY = timedelta(days=1)
# AppTest keeps no key for a read-only st.dataframe: the tables are told apart by a column of their own.
MENTORS = "Median hours to mark"
MENTEES = "Active warnings"


@pytest.fixture
def otto_marks(world: World) -> None:
    with world.factory.begin() as s:
        ids = world.ids
        add_booking(s, ids["otto"], ids["ana"], world.now - 15 * DAY, attended=False, marked_by=ActorKind.MENTOR)
        add_booking(s, ids["otto"], ids["ben"], world.now - 16 * DAY, attended=True, marked_by=ActorKind.MENTOR)


def open_page(app: AppTest, username: str) -> AppTest:
    at = signed_in_as(app, username)
    return at.switch_page(PAGE).run()


def table(at: AppTest, column: str) -> pd.DataFrame:
    [df] = [d.value for d in at.dataframe if column in d.value.columns]
    return df


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_an_admin_sees_every_mentor_and_the_automated_rate_above_the_counted_one(world, app, otto_marks):
    at = open_page(app, "admin")
    assert not at.exception
    shown = metrics(at)
    assert shown["Counted no-show rate"] == "33.3%"
    assert shown["Automated rate"] == "71.4%"
    assert shown["Sessions marked by a person"] == "3"
    assert shown["Pending"] == "3"
    mentors = table(at, MENTORS)
    assert list(mentors["Mentor"]) == ["Maria Mentor", "Otto Other"]
    assert list(mentors["No-show rate"]) == [0.0, 0.5]
    assert list(mentors["Automated marks"]) == [0, 4]
    mentees = table(at, MENTEES)
    # Most no-shows first, then by name.
    assert list(mentees["Mentee"]) == ["Ana Ruiz", "Ben *Stone*", "Cy Ng"]
    assert list(mentees["Reprobated"]) == [False, True, True]


def test_an_admin_can_narrow_to_one_mentor(world, app, otto_marks):
    at = open_page(app, "admin")
    at.selectbox(key="analytics_mentor").select(world.ids["otto"]).run()
    shown = metrics(at)
    assert (shown["Counted no-show rate"], shown["Automated rate"]) == ("50.0%", "83.3%")
    assert shown["Pending"] == "0"
    assert list(table(at, MENTORS)["Mentor"]) == ["Otto Other"]


def test_a_mentor_sees_only_their_own_numbers_whatever_is_asked(world, app, otto_marks):
    app.session_state["analytics_mentor"] = world.ids["otto"]  # asking for Otto's is ignored
    at = open_page(app, "mentor")
    assert not at.exception
    assert "analytics_mentor" not in [box.key for box in at.selectbox]  # no mentor to choose
    shown = metrics(at)
    assert shown["Counted no-show rate"] == "0.0%"
    assert shown["Automated rate"] == "0.0%"
    assert shown["Sessions marked by a person"] == "1"
    assert shown["Pending"] == "3"
    assert list(table(at, MENTORS)["Mentor"]) == ["Maria Mentor"]
    mentees = table(at, MENTEES)
    assert sorted(mentees["Mentee"]) == ["Ana Ruiz", "Cy Ng"]  # Ben was only ever Otto's
    assert dict(zip(mentees["Mentee"], mentees["Sessions"], strict=True)) == {"Ana Ruiz": 2, "Cy Ng": 2}


def test_the_csv_downloads_hold_the_mentors_own_tables(world, app, otto_marks, downloads):
    open_page(app, "mentor")
    mentors = pd.read_csv(io.BytesIO(downloads["analytics_mentors.csv"]()))
    mentees = pd.read_csv(io.BytesIO(downloads["analytics_mentees.csv"]()))
    assert list(mentors["Mentor"]) == ["Maria Mentor"]
    assert list(mentors["Pending"]) == [3]
    backlog = pd.read_csv(io.BytesIO(downloads["analytics_backlog.csv"]()))
    assert sorted(mentees["Mentee"]) == ["Ana Ruiz", "Cy Ng"]
    assert (list(backlog["Mentor"]), list(backlog["Pending"])) == (["Maria Mentor"], [3])


def test_a_range_without_sessions_shows_no_rate(world, app):
    at = open_page(app, "admin")
    first = (world.now - 400 * DAY).date()
    at.date_input(key="analytics_range").set_value((first, first + 6 * DAY)).run()
    assert not at.exception
    shown = metrics(at)
    assert (shown["Counted no-show rate"], shown["Pending"]) == ("—", "0")
    assert table(at, MENTORS).empty
