//! Windows in continuous SQL (docs/CONFIG.md, *Windows in SQL*).
//!
//! Contract: a continuous query may group by one window function besides its key columns,
//! `tumble(INTERVAL '<size>')` or `hop(INTERVAL '<slide>', INTERVAL '<size>')` (Arroyo's
//! spelling). Both bin the record's event time (`__timestamp`: the stream's `event_time` field
//! when one is set, else the input's timestamp) into windows `[start, start + size)` whose starts
//! are multiples of the size (tumble) or of the slide (hop) since the Unix epoch; the column's
//! value is `start` in milliseconds. The host assigns the windows itself: each row of the batch
//! is repeated once per window it falls in with a column `__window` holding the start, and
//! [`rewrite`] replaces the window function in the GROUP BY by that column, so DataFusion
//! computes partial aggregates per (key, window). Called anywhere else the functions fail with
//! a message saying where they belong.

use crate::processor::window::WindowKind;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

/// The column the host adds for a windowed query: the start of the row's window.
pub const WINDOW_COLUMN: &str = "__window";

/// The window functions' names.
pub const FUNCTIONS: [&str; 2] = ["tumble", "hop"];

/// The most windows one row may fall in (`size / slide` of a hop).
const MAX_WINDOWS_PER_ROW: i64 = 1000;

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFn {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for WindowFn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        datafusion::common::exec_err!(
            "{}() is a window of continuous sql: it belongs in the GROUP BY of a continuous query (with the stream's `event_time:`), next to the key columns",
            self.name
        )
    }
}

/// The window functions, to register in every session that plans a query.
pub fn udfs() -> Vec<ScalarUDF> {
    // Volatile: the planner must not fold a call over literals into a constant.
    FUNCTIONS.iter().map(|&name| ScalarUDF::from(WindowFn { name, signature: Signature::variadic_any(Volatility::Volatile) })).collect()
}

/// Milliseconds of an interval literal (no months: a month has no fixed length).
fn interval_ms(e: &Expr) -> Result<i64, String> {
    let ms = match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            (v.days as i64).checked_mul(86_400_000).and_then(|d| d.checked_add(v.nanoseconds / 1_000_000))
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => (v.days as i64).checked_mul(86_400_000).map(|d| d + v.milliseconds as i64),
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(_)), _) => {
            return Err("a window interval cannot be counted in months or years (they have no fixed length); use days".into())
        }
        other => return Err(format!("`{other}` is not an interval literal such as INTERVAL '1 minute'")),
    };
    match ms {
        Some(ms) if (1..=i64::MAX / 4).contains(&ms) => Ok(ms),
        _ => Err("a window interval must be at least 1 millisecond".into()),
    }
}

/// The window a GROUP BY expression stands for: None when it is not a window function.
pub fn window_of(e: &Expr) -> Option<Result<WindowKind, String>> {
    let Expr::ScalarFunction(f) = e else { return None };
    let name = f.func.name();
    if !FUNCTIONS.contains(&name) {
        return None;
    }
    let args: Result<Vec<i64>, String> = f.args.iter().map(interval_ms).collect();
    Some(args.and_then(|a| match (name, a.as_slice()) {
        ("tumble", [size_ms]) => Ok(WindowKind::Tumbling { size_ms: *size_ms }),
        ("hop", [slide_ms, size_ms]) if slide_ms <= size_ms && size_ms.div_euclid(*slide_ms) <= MAX_WINDOWS_PER_ROW => {
            Ok(WindowKind::Sliding { size_ms: *size_ms, slide_ms: *slide_ms })
        }
        ("hop", [_, _]) => Err(format!("hop(slide, size): the slide must be at most the size and at least size / {MAX_WINDOWS_PER_ROW}")),
        ("tumble", _) => Err("write tumble(INTERVAL '<size>')".into()),
        _ => Err("write hop(INTERVAL '<slide>', INTERVAL '<size>')".into()),
    }))
}

/// Whether `e` calls a window function anywhere.
pub fn mentions_window(e: &Expr) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = e.apply(|x| {
        found |= matches!(x, Expr::ScalarFunction(f) if FUNCTIONS.contains(&f.func.name()));
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// Whether any expression of `plan` calls a window function.
pub fn plan_mentions_window(plan: &datafusion::logical_expr::LogicalPlan) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = plan.apply(|n| {
        let _ = n.apply_expressions(|e| {
            found |= mentions_window(e);
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// The fields a windowed query's table has besides the data and metadata columns.
pub fn window_field() -> Field {
    Field::new(WINDOW_COLUMN, DataType::Int64, false)
}

/// `table` with every row repeated once per window start in `starts[row]`, and the column
/// `__window` holding the start.
pub fn expand(table: &RecordBatch, starts: &[Vec<i64>]) -> Result<RecordBatch, String> {
    let mut rows = Vec::new();
    let mut windows = Vec::new();
    for (row, s) in starts.iter().enumerate() {
        for start in s {
            rows.push(row as u32);
            windows.push(*start);
        }
    }
    let take = UInt32Array::from(rows);
    let mut columns: Vec<ArrayRef> =
        table.columns().iter().map(|c| datafusion::arrow::compute::take(c.as_ref(), &take, None).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    columns.push(Arc::new(Int64Array::from(windows)));
    let mut fields: Vec<Field> = table.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(window_field());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    #[test]
    fn rows_are_repeated_per_window_with_the_start_column() {
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Utf8, true)]));
        let t = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a", "b", "c"]))]).unwrap();
        let out = expand(&t, &[vec![0, 10], vec![], vec![20]]).unwrap();
        assert_eq!(out.num_rows(), 3);
        let w = out.column_by_name(WINDOW_COLUMN).unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(w.values().to_vec(), vec![0, 10, 20]);
        let u = out.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((u.value(0), u.value(1), u.value(2)), ("a", "a", "c"));
    }
}
