"""The ensemble arithmetic, checked by hand on small cases: weights, the weighted mean, the vote and its ties."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.ensembles.combine import average, combine, member_weights, vote, vote_per_label


def test_weights_follow_the_metric_or_its_inverse():
    np.testing.assert_allclose(member_weights([0.8, 0.6], higher_is_better=True), [0.8 / 1.4, 0.6 / 1.4])
    np.testing.assert_allclose(member_weights([0.5, 0.25], higher_is_better=False), [1 / 3, 2 / 3])  # 2 : 4
    for bad, higher in (([0.0, 0.0], True), ([0.3, 0.0], False), ([float("nan"), 1.0], True)):
        with pytest.raises(ValueError):
            member_weights(bad, higher)


def test_the_weighted_mean_by_hand():
    a, b = np.array([[0.9, 0.1]]), np.array([[0.3, 0.7]])
    np.testing.assert_allclose(average([a, b]), [[0.6, 0.4]])
    np.testing.assert_allclose(average([a, b], np.array([0.25, 0.75])), [[0.45, 0.55]])  # 0.225 + 0.225, ...
    values, _ = combine("regression", "mean", [np.array([[1.0], [4.0]]), np.array([[3.0], [0.0]])], None)
    np.testing.assert_allclose(values, [[2.0], [2.0]])


def test_the_majority_wins_even_against_the_mean():
    members = [np.array([[0.9, 0.1]]), np.array([[0.4, 0.6]]), np.array([[0.45, 0.55]])]
    assert average(members).argmax(1).tolist() == [0]  # mean p = 0.583 for label 0 ...
    assert vote(members).tolist() == [1]  # ... but two of three members say 1
    mean, chosen = combine("classification", "vote", members, None)
    assert chosen.tolist() == [1] and mean[0, 0] == pytest.approx(1.75 / 3)


def test_a_tie_goes_to_the_tied_label_with_the_highest_mean_probability():
    two = [np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.3, 0.7], [0.1, 0.9]])]
    assert vote(two).tolist() == [0, 1]  # 1-1 ties: means (0.6, 0.4) and (0.35, 0.65)
    # labels 0 and 1 tie on votes; label 2 has the highest mean but no vote, so it cannot win
    a, b = np.array([[0.40, 0.25, 0.35]]), np.array([[0.05, 0.50, 0.45]])
    assert average([a, b]).argmax(1).tolist() == [2] and vote([a, b]).tolist() == [1]


def test_multilabel_votes_per_label():
    a, b, c = np.array([[0.95, 0.6, 0.2]]), np.array([[0.3, 0.7, 0.2]]), np.array([[0.3, 0.1, 0.6]])
    # label 0: one vote of three (mean 0.52 would say on); label 1: two of three; label 2: one of three
    assert vote_per_label([a, b, c], 0.5).tolist() == [[False, True, False]]
    assert (average([a, b, c]) > 0.5).tolist() == [[True, False, False]]
    # two members, one each way: the mean decides
    assert vote_per_label([np.array([[0.9, 0.6]]), np.array([[0.2, 0.2]])], 0.5).tolist() == [[True, False]]


def test_regression_averages_only():
    with pytest.raises(ValueError):
        combine("regression", "vote", [np.zeros((1, 1))] * 2, None)
