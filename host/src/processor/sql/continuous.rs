//! Continuous GROUP BY: the query `SELECT <keys>, <aggregates> FROM t [WHERE ..] GROUP BY <keys>`
//! runs per batch as a *partial* aggregation (COUNT, SUM, MIN, MAX as written; AVG as SUM and
//! COUNT), and the partials are merged into keyed state: one state entry per group, key = the JSON
//! array of the group's values, value = the JSON array of its accumulators. Each batch emits one
//! upsert record per group it changed, with the query's own output column names. One GROUP BY
//! expression may be a window function (`super::window`): it is replaced by the host's
//! `__window` column, and the shape says where it is. Anything else (HAVING, ORDER BY, LIMIT,
//! DISTINCT, joins, window functions (OVER), other aggregates, expressions over aggregates) is
//! refused with the clause named.

use super::window::{mentions_window, plan_mentions_window, window_of, WINDOW_COLUMN};
use crate::processor::window::WindowKind;
use datafusion::common::tree_node::TreeNode;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{col, Expr, LogicalPlan, LogicalPlanBuilder};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// What the partial plan computes and how to present it.
#[derive(Debug, Clone)]
pub struct Shape {
    pub groups: usize,
    pub aggs: Vec<Agg>,
    /// Output columns: (name, index into [group values..., aggregates...]).
    pub outputs: Vec<(String, usize)>,
    /// The GROUP BY's window function: its index among the groups, and its windows.
    pub window: Option<(usize, WindowKind)>,
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

/// The clause a node stands for, when continuous mode cannot keep it.
fn refused(plan: &LogicalPlan) -> Option<&'static str> {
    Some(match plan {
        LogicalPlan::Sort(_) => "ORDER BY",
        LogicalPlan::Limit(_) => "LIMIT",
        LogicalPlan::Distinct(_) => "SELECT DISTINCT",
        LogicalPlan::Join(_) => "JOIN",
        LogicalPlan::Window(_) => "window functions (OVER)",
        LogicalPlan::Union(_) => "UNION",
        LogicalPlan::Subquery(_) => "subqueries",
        LogicalPlan::Aggregate(_) => "nested aggregation",
        _ => return None,
    })
}

fn err(clause: &str) -> String {
    format!("continuous mode cannot keep {clause}; use `mode: batch` for per-batch results, or drop it (continuous mode supports SELECT <keys>, COUNT/SUM/MIN/MAX/AVG ... FROM <table> [WHERE ...] GROUP BY <keys>)")
}

/// Derives the partial-aggregation plan and the shape from the query's logical plan.
pub fn derive(plan: &LogicalPlan) -> Result<(LogicalPlan, Shape), String> {
    let (projection, agg) = match plan {
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::Aggregate(a) => (Some(p), a),
            LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => return Err(err("HAVING")),
            other => return Err(refused(other).map(err).unwrap_or_else(|| "continuous mode needs a GROUP BY query (SELECT <keys>, <aggregates> FROM <table> GROUP BY <keys>); this query has no GROUP BY — use `mode: batch`".into())),
        },
        LogicalPlan::Aggregate(a) => (None, a),
        other => return Err(refused(other).map(err).unwrap_or_else(|| "continuous mode needs a GROUP BY query".into())),
    };
    if agg.group_expr.is_empty() {
        return Err("continuous mode needs GROUP BY (an aggregate over the whole stream has no key to keep it under); use `mode: batch`".into());
    }
    let mut inner_refusal = None;
    let _ = agg.input.apply(|n| {
        if let Some(c) = refused(n) {
            inner_refusal = Some(c);
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    if let Some(c) = inner_refusal {
        return Err(err(c));
    }
    let mut aggs = Vec::new();
    let mut partials = Vec::new();
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        let Expr::AggregateFunction(f) = unalias(e) else { return Err(format!("continuous mode: `{e}` is not an aggregate function")) };
        let name = f.func.name().to_ascii_lowercase();
        if f.params.distinct {
            return Err(err(&format!("{}(DISTINCT ...)", name.to_uppercase())));
        }
        let kind = match name.as_str() {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "avg" | "mean" => Agg::Avg,
            other => return Err(err(&format!("the aggregate {}() (mergeable ones: COUNT, SUM, MIN, MAX, AVG)", other.to_uppercase()))),
        };
        match kind {
            Agg::Avg => {
                if f.params.filter.is_some() || f.params.args.len() != 1 {
                    return Err(err("AVG with FILTER"));
                }
                let arg = f.params.args[0].clone();
                partials.push(sum(arg.clone()).alias(format!("__p{i}_sum")));
                partials.push(count(arg).alias(format!("__p{i}_count")));
            }
            _ => partials.push(unalias(e).clone().alias(format!("__p{i}"))),
        }
        aggs.push(kind);
    }
    let (groups, window) = window_groups(agg)?;
    let partial = LogicalPlanBuilder::from(agg.input.as_ref().clone()).aggregate(groups, partials).and_then(|b| b.build()).map_err(|e| e.to_string())?;
    let n_groups = agg.group_expr.len();
    let outputs = match projection {
        None => (0..agg.schema.fields().len()).map(|i| (agg.schema.field(i).name().clone(), i)).collect(),
        Some(p) => p
            .expr
            .iter()
            .enumerate()
            .map(|(j, e)| match unalias(e) {
                Expr::Column(c) => agg.schema.index_of_column(c).map(|i| (p.schema.field(j).name().clone(), i)).map_err(|e| e.to_string()),
                // A group expression repeated as written (the planner keeps volatile ones so;
                // compared as written: a volatile call never equals another).
                other => match group_position(agg, other) {
                    Some(i) => Ok((p.schema.field(j).name().clone(), i)),
                    None => Err(format!("continuous mode: the output column `{other}` is an expression over the aggregates; select the aggregates and group keys themselves, or use `mode: batch`")),
                },
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok((partial, Shape { groups: n_groups, aggs, outputs, window }))
}

fn group_position(agg: &datafusion::logical_expr::Aggregate, e: &Expr) -> Option<usize> {
    let written = e.to_string();
    agg.group_expr.iter().position(|g| unalias(g).to_string() == written)
}

/// The GROUP BY expressions to run, the window function (at most one) replaced by the host's
/// `__window` column, and where the window is.
type Groups = (Vec<Expr>, Option<(usize, WindowKind)>);

fn window_groups(agg: &datafusion::logical_expr::Aggregate) -> Result<Groups, String> {
    let misplaced = "a window function (tumble, hop) is a GROUP BY expression of its own: GROUP BY <keys>, tumble(INTERVAL '1 minute')";
    if plan_mentions_window(&agg.input) || agg.aggr_expr.iter().any(mentions_window) {
        return Err(misplaced.into());
    }
    let mut window = None;
    let mut groups = Vec::new();
    for (i, g) in agg.group_expr.iter().map(unalias).enumerate() {
        let e = match window_of(g) {
            Some(Ok(_)) if window.is_some() => return Err("continuous mode groups by one window function at most".into()),
            Some(Ok(kind)) => {
                window = Some((i, kind));
                col(WINDOW_COLUMN)
            }
            Some(Err(e)) => return Err(e),
            None if mentions_window(g) => return Err(misplaced.into()),
            None => g.clone(),
        };
        groups.push(e.alias(format!("__g{i}")));
    }
    if window.is_some() {
        if agg.group_expr.len() < 2 {
            return Err("a windowed continuous query needs a key column besides the window (GROUP BY user_id, tumble(INTERVAL '1 minute')): a window over every record has no key to keep it under".into());
        }
        if !agg.input.schema().fields().iter().any(|f| f.name() == WINDOW_COLUMN) {
            return Err("a windowed continuous query reads its table directly (SELECT ... FROM <table> [WHERE ...] GROUP BY ...)".into());
        }
    }
    Ok((groups, window))
}

/// The columns of a continuous query's GROUP BY, in order, without its window function; Err names a group expression that is
/// not a plain column.
pub fn group_columns(plan: &LogicalPlan) -> Result<Vec<String>, String> {
    let mut agg = None;
    let _ = plan.apply(|n| {
        if let LogicalPlan::Aggregate(a) = n {
            agg = Some(a.group_expr.clone());
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    agg.unwrap_or_default()
        .iter()
        .filter(|g| window_of(unalias(g)).is_none())
        .map(|g| match unalias(g) {
            Expr::Column(c) => Ok(c.name.clone()),
            other => Err(format!("continuous sql groups by `{other}`, which is not a column of the records")),
        })
        .collect()
}

fn add(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) if x.checked_add(y).is_some() => Value::from(x + y),
            _ => serde_json::Number::from_f64(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)).map_or(Value::Null, Value::Number),
        },
        (x, _) => x.clone(),
    }
}

fn pick(a: &Value, b: &Value, want_less: bool) -> Value {
    let less = match (a, b) {
        (Value::Null, _) => return b.clone(),
        (_, Value::Null) => return a.clone(),
        (Value::Number(x), Value::Number(y)) => y.as_f64() < x.as_f64(),
        (Value::String(x), Value::String(y)) => y < x,
        (Value::Bool(x), Value::Bool(y)) => y < x,
        _ => false,
    };
    // `less`: b < a.
    if less == want_less && a != b {
        b.clone()
    } else {
        a.clone()
    }
}

/// Merges one partial row (the partial columns after the group columns) into `acc` (None: a new
/// group); returns the new accumulators.
pub fn merge(shape: &Shape, acc: Option<Vec<Value>>, partial: &[Value]) -> Vec<Value> {
    let mut cols = partial.iter();
    let mut next = || cols.next().cloned().unwrap_or(Value::Null);
    let fresh: Vec<Value> = shape
        .aggs
        .iter()
        .map(|a| match a {
            Agg::Avg => Value::Array(vec![next(), next()]),
            _ => next(),
        })
        .collect();
    let Some(old) = acc else { return fresh };
    shape
        .aggs
        .iter()
        .zip(old.iter().zip(fresh.iter()))
        .map(|(a, (o, n))| match a {
            Agg::Count | Agg::Sum => add(o, n),
            Agg::Min => pick(o, n, true),
            Agg::Max => pick(o, n, false),
            Agg::Avg => {
                let part = |v: &Value, i: usize| v.get(i).cloned().unwrap_or(Value::Null);
                Value::Array(vec![add(&part(o, 0), &part(n, 0)), add(&part(o, 1), &part(n, 1))])
            }
        })
        .collect()
}

/// The final value of one accumulator.
pub fn finish(agg: Agg, acc: &Value) -> Value {
    match agg {
        Agg::Avg => {
            let (s, c) = (acc.get(0).and_then(Value::as_f64), acc.get(1).and_then(Value::as_f64));
            match (s, c) {
                (Some(s), Some(c)) if c > 0.0 => serde_json::Number::from_f64(s / c).map_or(Value::Null, Value::Number),
                _ => Value::Null,
            }
        }
        _ => acc.clone(),
    }
}

/// The upsert record of a group: a JSON object with the query's output columns.
pub fn render(shape: &Shape, groups: &[Value], acc: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (j, (name, idx)) in shape.outputs.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        crate::util::json::write_str(&mut out, name);
        out.push(b':');
        let v = if *idx < shape.groups { groups[*idx].clone() } else { finish(shape.aggs[idx - shape.groups], &acc[idx - shape.groups]) };
        out.extend_from_slice(v.to_string().as_bytes());
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape() -> Shape {
        Shape {
            groups: 1,
            aggs: vec![Agg::Count, Agg::Sum, Agg::Min, Agg::Max, Agg::Avg],
            outputs: vec![("u".into(), 0), ("n".into(), 1), ("s".into(), 2), ("lo".into(), 3), ("hi".into(), 4), ("avg".into(), 5)],
            window: None,
        }
    }

    #[test]
    fn partials_merge_like_one_aggregation_over_all_rows() {
        let s = shape();
        // Batch 1: values 1, 5; batch 2: values 3, 10.5, null sum (no rows) ignored.
        let a = merge(&s, None, &[json!(2), json!(6), json!(1), json!(5), json!(6), json!(2)]);
        let a = merge(&s, Some(a), &[json!(2), json!(13.5), json!(3), json!(10.5), json!(13.5), json!(2)]);
        let a = merge(&s, Some(a), &[json!(0), Value::Null, Value::Null, Value::Null, Value::Null, json!(0)]);
        let rec: Value = serde_json::from_slice(&render(&s, &[json!("u1")], &a)).unwrap();
        assert_eq!(rec, json!({"u": "u1", "n": 4, "s": 19.5, "lo": 1, "hi": 10.5, "avg": 4.875}));
    }

    #[test]
    fn strings_compare_for_min_and_max() {
        let s = Shape { groups: 0, aggs: vec![Agg::Min, Agg::Max], outputs: vec![], window: None };
        let a = merge(&s, None, &[json!("m"), json!("m")]);
        let a = merge(&s, Some(a), &[json!("b"), json!("z")]);
        assert_eq!(a, vec![json!("b"), json!("z")]);
    }
}
