//! Evaluation: classification and regression metrics, confusion matrices, fairness across the
//! groups of a column, and permutation feature importance. Definitions follow scikit-learn's
//! (`roc_auc_score`, `average_precision_score`, `log_loss`, `r2_score`…) so figures compare.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::Rng;

/// Probabilities are clipped to `[EPS, 1 − EPS]` in log loss.
const EPS: f64 = 1e-15;

/// Metrics of a binary classifier at a threshold, plus its threshold-free ranking metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    pub rows: usize,
    pub positives: usize,
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// `None` when only one class is present.
    pub roc_auc: Option<f64>,
    /// Average precision; `None` without positives.
    pub pr_auc: Option<f64>,
    pub log_loss: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MulticlassMetrics {
    pub rows: usize,
    pub accuracy: f64,
    /// Unweighted means over classes.
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub log_loss: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub rows: usize,
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
}

/// Counts of (actual, predicted) pairs: `counts[actual][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Class indices out of range are ignored.
    pub fn new(labels: Vec<String>, actual: &[usize], predicted: &[usize]) -> ConfusionMatrix {
        let k = labels.len();
        let mut counts = vec![vec![0u64; k]; k];
        for (&a, &p) in actual.iter().zip(predicted) {
            if a < k && p < k {
                counts[a][p] += 1;
            }
        }
        ConfusionMatrix { labels, counts }
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann–Whitney with mid-ranks). `None` with one class.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let n = labels.len().min(scores.len());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels[..n].iter().filter(|&&l| l).count();
    let negatives = n - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the positives' 1-based ranks, ties sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&r| labels[r]).count();
        rank_sum += mid_rank * tied_positives as f64;
        i = j + 1;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Average precision: `Σ (Rₙ − Rₙ₋₁) Pₙ` over descending distinct score thresholds (the
/// step-wise area under the precision–recall curve, as scikit-learn). `None` without positives.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Option<f64> {
    let n = labels.len().min(scores.len());
    let positives = labels[..n].iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j < n && scores[order[j]] == scores[order[i]] {
            if labels[order[j]] {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let recall = ratio(tp, positives);
        ap += (recall - last_recall) * ratio(tp, tp + fp);
        last_recall = recall;
        i = j;
    }
    Some(ap)
}

/// Mean negative log-likelihood of binary labels under probabilities `p` (of the positive).
pub fn log_loss(labels: &[bool], p: &[f64]) -> f64 {
    let n = labels.len().min(p.len());
    if n == 0 {
        return 0.0;
    }
    let total: f64 = labels
        .iter()
        .zip(p)
        .map(|(&l, &p)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            -(if l { p.ln() } else { (1.0 - p).ln() })
        })
        .sum();
    total / n as f64
}

/// Binary metrics of probabilities `p` (of the positive class) at `threshold` (≥ is positive).
pub fn binary(labels: &[bool], p: &[f64], threshold: f64) -> BinaryMetrics {
    let n = labels.len().min(p.len());
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (&l, &s) in labels.iter().zip(p) {
        match (l, s >= threshold) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
    }
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    BinaryMetrics {
        rows: n,
        positives: tp + fn_,
        threshold,
        accuracy: ratio(tp + tn, n),
        precision,
        recall,
        f1: f1(precision, recall),
        roc_auc: roc_auc(&labels[..n], &p[..n]),
        pr_auc: average_precision(&labels[..n], &p[..n]),
        log_loss: log_loss(&labels[..n], &p[..n]),
    }
}

/// Multiclass metrics of row-major probabilities `p` (`actual.len() × classes`); the prediction
/// is the most probable class.
pub fn multiclass(actual: &[usize], p: &[f64], classes: usize) -> (MulticlassMetrics, Vec<usize>) {
    let predicted: Vec<usize> = p
        .chunks_exact(classes.max(1))
        .map(crate::model::argmax)
        .collect();
    let n = actual.len().min(predicted.len());
    let mut correct = 0;
    let mut loss = 0.0;
    let (mut tp, mut pred, mut act) = (
        vec![0usize; classes],
        vec![0usize; classes],
        vec![0usize; classes],
    );
    for (i, (&a, &q)) in actual.iter().zip(&predicted).enumerate() {
        if a >= classes {
            continue;
        }
        correct += usize::from(a == q);
        tp[a] += usize::from(a == q);
        pred[q] += 1;
        act[a] += 1;
        loss -= p[i * classes + a].clamp(EPS, 1.0).ln();
    }
    let k = classes.max(1) as f64;
    let precisions: Vec<f64> = (0..classes).map(|c| ratio(tp[c], pred[c])).collect();
    let recalls: Vec<f64> = (0..classes).map(|c| ratio(tp[c], act[c])).collect();
    let metrics = MulticlassMetrics {
        rows: n,
        accuracy: ratio(correct, n),
        macro_precision: precisions.iter().sum::<f64>() / k,
        macro_recall: recalls.iter().sum::<f64>() / k,
        macro_f1: precisions
            .iter()
            .zip(&recalls)
            .map(|(&p, &r)| f1(p, r))
            .sum::<f64>()
            / k,
        log_loss: if n == 0 { 0.0 } else { loss / n as f64 },
    };
    (metrics, predicted)
}

pub fn regression(actual: &[f64], predicted: &[f64]) -> RegressionMetrics {
    let n = actual.len().min(predicted.len());
    if n == 0 {
        return RegressionMetrics {
            rows: 0,
            rmse: 0.0,
            mae: 0.0,
            r2: 0.0,
        };
    }
    let nf = n as f64;
    let mean = actual[..n].iter().sum::<f64>() / nf;
    let (mut se, mut ae, mut tot) = (0.0, 0.0, 0.0);
    for (&y, &f) in actual.iter().zip(predicted) {
        se += (y - f) * (y - f);
        ae += (y - f).abs();
        tot += (y - mean) * (y - mean);
    }
    RegressionMetrics {
        rows: n,
        rmse: (se / nf).sqrt(),
        mae: ae / nf,
        // scikit-learn's convention for a constant target: 1 if perfect, else 0.
        r2: if tot > 0.0 {
            1.0 - se / tot
        } else if se == 0.0 {
            1.0
        } else {
            0.0
        },
    }
}

/// A group's rates, for fairness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    pub group: String,
    pub rows: usize,
    pub positives: usize,
    /// Share of the group predicted positive.
    pub selection_rate: f64,
    /// Share of the group's actual positives predicted positive; `None` without positives.
    pub true_positive_rate: Option<f64>,
}

/// How a binary classifier's decisions differ between the groups of a (sensitive) column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    pub column: String,
    /// By group name; rows where the column is missing form the group `"(missing)"`.
    pub groups: Vec<GroupRates>,
    /// max − min selection rate over groups.
    pub demographic_parity_difference: f64,
    /// max − min true-positive rate over groups that have positives.
    pub equal_opportunity_difference: f64,
}

/// The group of a missing value.
pub const MISSING_GROUP: &str = "(missing)";

pub fn fairness(
    column: &str,
    groups: &[Option<&str>],
    labels: &[bool],
    predicted: &[bool],
) -> Fairness {
    // (rows, positives, selected, selected positives)
    let mut by: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for ((g, &l), &s) in groups.iter().zip(labels).zip(predicted) {
        let c = by.entry(g.unwrap_or(MISSING_GROUP)).or_default();
        c[0] += 1;
        c[1] += usize::from(l);
        c[2] += usize::from(s);
        c[3] += usize::from(l && s);
    }
    let groups: Vec<GroupRates> = by
        .into_iter()
        .map(|(g, c)| GroupRates {
            group: g.to_owned(),
            rows: c[0],
            positives: c[1],
            selection_rate: ratio(c[2], c[0]),
            true_positive_rate: (c[1] > 0).then(|| ratio(c[3], c[1])),
        })
        .collect();
    let spread = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        if hi >= lo { hi - lo } else { 0.0 }
    };
    Fairness {
        column: column.to_owned(),
        demographic_parity_difference: spread(&mut groups.iter().map(|g| g.selection_rate)),
        equal_opportunity_difference: spread(
            &mut groups.iter().filter_map(|g| g.true_positive_rate),
        ),
        groups,
    }
}

/// How much the main metric drops when one input column is shuffled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    pub column: String,
    /// Mean drop over repeats (baseline − shuffled score).
    pub drop: f64,
    /// Standard deviation of the drop over repeats.
    pub std: f64,
}

/// Permutation importance over a row-major matrix `x` (`rows × width`): for each named block of
/// matrix columns (one input column's encoding), shuffles the block's rows `repeats` times
/// (seeded) and records how much `score` falls from its value on the intact matrix. `x` is
/// restored afterwards. Sorted by drop, largest first.
pub fn permutation_importance(
    x: &mut [f32],
    width: usize,
    blocks: &[(String, Range<usize>)],
    repeats: usize,
    seed: u64,
    score: &mut dyn FnMut(&[f32]) -> f64,
) -> Vec<Importance> {
    let rows = x.len().checked_div(width).unwrap_or(0);
    let baseline = score(x);
    let mut rng = Rng::new(seed);
    let mut perm: Vec<usize> = (0..rows).collect();
    let mut saved = Vec::new();
    let mut out = Vec::with_capacity(blocks.len());
    for (name, cols) in blocks {
        let bw = cols.len();
        saved.clear();
        for r in 0..rows {
            saved.extend_from_slice(&x[r * width + cols.start..r * width + cols.end]);
        }
        let mut drops = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            rng.shuffle(&mut perm);
            for (r, &from) in perm.iter().enumerate() {
                x[r * width + cols.start..r * width + cols.end]
                    .copy_from_slice(&saved[from * bw..(from + 1) * bw]);
            }
            drops.push(baseline - score(x));
        }
        for r in 0..rows {
            x[r * width + cols.start..r * width + cols.end]
                .copy_from_slice(&saved[r * bw..(r + 1) * bw]);
        }
        let k = drops.len().max(1) as f64;
        let mean = drops.iter().sum::<f64>() / k;
        let var = drops.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / k;
        out.push(Importance {
            column: name.clone(),
            drop: mean,
            std: var.sqrt(),
        });
    }
    out.sort_by(|a, b| b.drop.total_cmp(&a.drop));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn roc_auc_counts_ties_as_halves() {
        // Positives at 0.8 and 0.4; negatives at 0.4, 0.2, 0.1. Pairs: (0.8 beats all 3),
        // (0.4 ties one, beats two) → (3 + 2.5) / 6.
        let labels = [true, true, false, false, false];
        let scores = [0.8, 0.4, 0.4, 0.2, 0.1];
        assert_eq!(roc_auc(&labels, &scores), Some(5.5 / 6.0));
        assert_eq!(roc_auc(&[true, false], &[0.5, 0.5]), Some(0.5));
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        // Perfectly inverted.
        assert_eq!(roc_auc(&[true, false], &[0.1, 0.9]), Some(0.0));
    }

    #[test]
    fn average_precision_matches_hand_computation() {
        // scikit-learn's docstring example: y = [0, 0, 1, 1], s = [.1, .4, .35, .8] → 0.8333….
        let ap = average_precision(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]);
        assert!(ap.is_some_and(|v| close(v, 5.0 / 6.0)), "{ap:?}");
        // A tie between a positive and a negative at the top: one step to recall 1 at
        // precision 1/2.
        let ap = average_precision(&[true, false], &[0.7, 0.7]);
        assert_eq!(ap, Some(0.5));
        assert_eq!(average_precision(&[false], &[0.7]), None);
    }

    #[test]
    fn threshold_metrics_and_log_loss() {
        let labels = [true, true, false, false, true];
        let p = [0.9, 0.4, 0.6, 0.1, 0.5];
        let m = binary(&labels, &p, 0.5);
        // tp = 2 (0.9, 0.5), fp = 1 (0.6), fn = 1 (0.4), tn = 1.
        assert!(close(m.accuracy, 3.0 / 5.0));
        assert!(close(m.precision, 2.0 / 3.0));
        assert!(close(m.recall, 2.0 / 3.0));
        assert!(close(m.f1, 2.0 / 3.0));
        assert_eq!(m.positives, 3);
        let want = -(0.9f64.ln() + 0.4f64.ln() + 0.4f64.ln() + 0.9f64.ln() + 0.5f64.ln()) / 5.0;
        assert!(close(m.log_loss, want));
        // No positive predictions: precision is 0, not NaN.
        let m = binary(&labels, &[0.0; 5], 0.5);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        assert!(log_loss(&[true], &[0.0]) < 35.0);
    }

    #[test]
    fn multiclass_metrics_and_confusion() {
        let actual = [0, 1, 2, 2];
        let p = [
            0.7, 0.2, 0.1, // → 0
            0.1, 0.3, 0.6, // → 2
            0.2, 0.2, 0.6, // → 2
            0.3, 0.4, 0.3, // → 1
        ];
        let (m, predicted) = multiclass(&actual, &p, 3);
        assert_eq!(predicted, vec![0, 2, 2, 1]);
        assert!(close(m.accuracy, 0.5));
        // Precision: class 0 1/1, class 1 0/1, class 2 1/2; recall: 1, 0, 1/2.
        assert!(close(m.macro_precision, 0.5));
        assert!(close(m.macro_recall, 0.5));
        assert!(close(m.macro_f1, (1.0 + 0.0 + 0.5) / 3.0));
        let want = -(0.7f64.ln() + 0.3f64.ln() + 0.6f64.ln() + 0.3f64.ln()) / 4.0;
        assert!(close(m.log_loss, want));
        let c = ConfusionMatrix::new(
            vec!["a".into(), "b".into(), "c".into()],
            &actual,
            &predicted,
        );
        assert_eq!(c.counts, vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 1]]);
    }

    #[test]
    fn regression_metrics() {
        let m = regression(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 4.0, 2.0]);
        // Errors 0, 0, −1, 2: squared sum 5, MSE 5/4.
        assert!(close(m.rmse, 1.25f64.sqrt()));
        assert!(close(m.mae, 0.75));
        // Total sum of squares around the mean 2.5 is also 5: R² = 1 − 5/5.
        assert!(close(m.r2, 0.0));
        assert!(close(regression(&[2.0, 2.0], &[2.0, 2.0]).r2, 1.0));
    }

    #[test]
    fn fairness_differences() {
        let groups = [Some("a"), Some("a"), Some("a"), Some("b"), Some("b"), None];
        let labels = [true, true, false, true, false, false];
        let predicted = [true, false, false, true, true, false];
        let f = fairness("sex", &groups, &labels, &predicted);
        let names: Vec<&str> = f.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, vec![MISSING_GROUP, "a", "b"]);
        // Selection: (missing) 0, a 1/3, b 1 → 1. TPR: a 1/2, b 1 → 1/2.
        assert!(close(f.demographic_parity_difference, 1.0));
        assert!(close(f.equal_opportunity_difference, 0.5));
        assert_eq!(f.groups[0].true_positive_rate, None);
    }

    #[test]
    fn permutation_importance_finds_the_column_that_matters() {
        // Two rows-blocks: column 0 is the score, column 1 noise. Score: mean |x0 − target|.
        let target: Vec<f32> = (0..200).map(|i| (i % 7) as f32).collect();
        let mut x: Vec<f32> = target
            .iter()
            .enumerate()
            .flat_map(|(i, &t)| [t, (i % 3) as f32])
            .collect();
        let before = x.clone();
        let mut score = |m: &[f32]| {
            -m.chunks_exact(2)
                .zip(&target)
                .map(|(r, t)| f64::from((r[0] - t).abs()))
                .sum::<f64>()
        };
        let blocks = vec![("signal".to_owned(), 0..1), ("noise".to_owned(), 1..2)];
        let imp = permutation_importance(&mut x, 2, &blocks, 3, 9, &mut score);
        assert_eq!(imp[0].column, "signal");
        assert!(imp[0].drop > 100.0, "{imp:?}");
        assert!(close(imp[1].drop, 0.0) && close(imp[1].std, 0.0));
        assert_eq!(x, before);
    }
}
