from routing.duplicates import issue_words, rank, similarity
from routing.text import tokens

PLACE = {"岳麓区", "望月湖", "望月湖街道", "银盆岭", "银盆岭街道"}


def words(text):
    return issue_words(tokens(text), PLACE)


def test_a_reworded_complaint_at_the_same_place_is_a_candidate():
    new = words("岳麓区望月湖小区门口下水道堵塞，污水漫到路面，臭气熏天")
    old = words("望月湖街道这边下水道又堵了，污水流到马路上很臭")
    found = rank(new, [("20261125-000001", old)])
    assert [c.number for c in found] == ["20261125-000001"]
    assert "下水道" in found[0].shared_words


def test_a_different_problem_at_the_same_place_is_not_a_candidate():
    new = words("岳麓区望月湖小区门口下水道堵塞，污水漫到路面，臭气熏天")
    other = words("岳麓区望月湖小区广场舞音响太吵，晚上十点还在跳")
    assert rank(new, [("20261125-000002", other)]) == []


def test_place_words_do_not_count_towards_similarity():
    assert similarity(words("岳麓区望月湖街道"), words("望月湖街道岳麓区")) == 0.0


def test_candidates_are_ordered_by_score_and_limited():
    new = words("公交车司机态度恶劣，不等乘客上车就关门")
    others = [
        ("a", words("公交车司机不等乘客上车就关门开走")),
        ("b", words("公交司机态度差")),
        ("c", words("路灯不亮")),
    ]
    found = rank(new, others, threshold=0.3, limit=2)
    assert [c.number for c in found][0] == "a"
    assert len(found) <= 2 and all(c.number != "c" for c in found)
