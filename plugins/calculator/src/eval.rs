//! Arithmetic on evalexpr's operator tree. evalexpr parses; this module checks that the tree
//! is arithmetic only and evaluates it itself, so that the rules are ours: integers are
//! exact 64-bit values and an overflow is an error, never a wrapped or rounded number; `/`
//! of two integers stays an integer when it divides exactly and gives a decimal otherwise;
//! `^` of integers is exact; division by zero and results that are not finite are errors.
//! Variables, assignments, strings, booleans, comparisons and `;` chains are refused.

use evalexpr::{Node, Operator, Value};

/// The longest expression accepted, in characters.
pub const MAX_CHARS: usize = 1_000;

/// Functions the calculator knows, for the tool's description and error messages.
pub const FUNCTIONS: &str = "abs, sqrt, cbrt, exp, ln, log2, log10, sin, cos, tan, asin, acos, atan, floor, ceil, round, trunc (one argument); min, max (one or more); pow, atan2, hypot (two)";

/// Why an expression has no answer. The message is for the model, which can rewrite it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// Empty or only spaces.
    #[error("the expression is empty")]
    Empty,
    /// Over [`MAX_CHARS`].
    #[error("the expression has {0} characters; the calculator takes at most {MAX_CHARS}")]
    TooLong(usize),
    /// Not an expression evalexpr can parse.
    #[error("cannot parse the expression: {0}")]
    Syntax(String),
    /// An integer literal beyond 64 bits (which evalexpr would silently read as a float).
    #[error("the integer {0} is too large (integers are 64-bit, at most 9223372036854775807)")]
    LiteralTooLarge(String),
    /// Something that is not arithmetic: an assignment, a comparison, a string, ...
    #[error("only arithmetic is supported (numbers, + - * / % ^, parentheses, functions); found {0}")]
    NotArithmetic(String),
    /// A name that is neither a constant nor a function.
    #[error("unknown name `{0}` (constants: pi, e; functions: {FUNCTIONS})")]
    UnknownName(String),
    /// A function given the wrong number of arguments.
    #[error("`{name}` takes {wanted}, not {got}")]
    Arity {
        /// The function.
        name: String,
        /// How many it takes, in words.
        wanted: &'static str,
        /// How many it got.
        got: usize,
    },
    /// Division or remainder by zero.
    #[error("division by zero")]
    DivisionByZero,
    /// An integer result beyond 64 bits.
    #[error("integer overflow: {0} does not fit in a 64-bit integer")]
    Overflow(String),
    /// A floating-point result that is infinite or not a number.
    #[error("the result of {0} is not a finite number")]
    NotFinite(String),
}

/// A number during evaluation: exact while it can be, a float once it cannot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An exact 64-bit integer.
    Int(i64),
    /// A finite double.
    Float(f64),
}

impl Num {
    fn float(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// The answer as the tool prints it: integers in full; floats rounded to 15 significant
    /// digits, which hides binary noise (`0.1 + 0.2` is `0.3`) and keeps what a double means.
    pub fn display(self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => {
                let rounded: f64 = format!("{f:.14e}").parse().unwrap_or(f);
                // `-0` reads oddly as an answer.
                if rounded == 0.0 { "0".to_owned() } else { rounded.to_string() }
            }
        }
    }
}

/// Evaluate `expression`.
pub fn evaluate(expression: &str) -> Result<Num, CalcError> {
    let chars = expression.chars().count();
    if chars > MAX_CHARS {
        return Err(CalcError::TooLong(chars));
    }
    if expression.trim().is_empty() {
        return Err(CalcError::Empty);
    }
    check_integer_literals(expression)?;
    let tree = evalexpr::build_operator_tree(expression).map_err(|e| CalcError::Syntax(e.to_string()))?;
    if tree.children().is_empty() {
        return Err(CalcError::Empty);
    }
    eval(&tree)
}

/// evalexpr reads an integer literal that does not fit `i64` as a float, which would turn
/// `99999999999999999999 + 1` into an inexact answer; refuse such literals instead.
fn check_integer_literals(expression: &str) -> Result<(), CalcError> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    for word in expression.split(|c: char| !is_word(c)) {
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) && word.parse::<i64>().is_err() {
            return Err(CalcError::LiteralTooLarge(word.to_owned()));
        }
    }
    Ok(())
}

fn eval(node: &Node) -> Result<Num, CalcError> {
    let children = node.children();
    match node.operator() {
        Operator::RootNode => match children {
            [only] => eval(only),
            [] => Err(CalcError::NotArithmetic("empty parentheses".to_owned())),
            _ => Err(CalcError::NotArithmetic("several values where one was expected".to_owned())),
        },
        Operator::Const { value } => constant(value),
        Operator::VariableIdentifierRead { identifier } => match identifier.as_str() {
            "pi" => Ok(Num::Float(std::f64::consts::PI)),
            "e" => Ok(Num::Float(std::f64::consts::E)),
            other => Err(CalcError::UnknownName(other.to_owned())),
        },
        Operator::Neg => match children {
            [x] => match eval(x)? {
                Num::Int(i) => i.checked_neg().map(Num::Int).ok_or_else(|| CalcError::Overflow(format!("-({i})"))),
                Num::Float(f) => Ok(Num::Float(-f)),
            },
            _ => Err(incomplete(node)),
        },
        op @ (Operator::Add | Operator::Sub | Operator::Mul | Operator::Div | Operator::Mod | Operator::Exp) => match children {
            [a, b] => binary(op, eval(a)?, eval(b)?),
            _ => Err(incomplete(node)),
        },
        Operator::FunctionIdentifier { identifier } => {
            if !is_function(identifier) {
                return Err(CalcError::UnknownName(identifier.clone()));
            }
            let [args] = children else { return Err(incomplete(node)) };
            function(identifier, &arguments(args)?)
        }
        Operator::Tuple => Err(CalcError::NotArithmetic("a list of values `(a, b)` outside a function's arguments".to_owned())),
        other => Err(CalcError::NotArithmetic(format!("`{}`", describe(other)))),
    }
}

/// An operator without its operands (evalexpr accepts some, e.g. a trailing `+`).
fn incomplete(node: &Node) -> CalcError {
    CalcError::Syntax(format!("`{}` is missing an operand", node.operator()))
}

fn describe(op: &Operator) -> String {
    match op {
        Operator::VariableIdentifierWrite { identifier } => format!("an assignment to {identifier}"),
        Operator::Chain => "`;`".to_owned(),
        other => other.to_string(),
    }
}

fn constant(value: &Value) -> Result<Num, CalcError> {
    match value {
        Value::Int(i) => Ok(Num::Int(*i)),
        Value::Float(f) if f.is_finite() => Ok(Num::Float(*f)),
        Value::Float(f) => Err(CalcError::NotFinite(format!("the number {f}"))),
        Value::String(s) => Err(CalcError::NotArithmetic(format!("the string {s:?}"))),
        Value::Boolean(b) => Err(CalcError::NotArithmetic(format!("the boolean {b}"))),
        Value::Tuple(_) | Value::Empty => Err(CalcError::NotArithmetic(format!("the value {value}"))),
    }
}

/// A function's arguments: `f(a, b)` is a tuple under a root node; `f x` is one value.
fn arguments(node: &Node) -> Result<Vec<Num>, CalcError> {
    match (node.operator(), node.children()) {
        (Operator::RootNode, [only]) => arguments(only),
        (Operator::RootNode, []) => Ok(Vec::new()),
        (Operator::Tuple, items) => items.iter().map(eval).collect(),
        _ => Ok(vec![eval(node)?]),
    }
}

/// A float result, refused when it is not finite.
fn finite(value: f64, what: impl FnOnce() -> String) -> Result<Num, CalcError> {
    if value.is_finite() { Ok(Num::Float(value)) } else { Err(CalcError::NotFinite(what())) }
}

fn binary(op: &Operator, a: Num, b: Num) -> Result<Num, CalcError> {
    let text = || format!("{} {op} {}", a.display(), b.display());
    if let (Num::Int(x), Num::Int(y)) = (a, b) {
        let exact = match op {
            Operator::Add => x.checked_add(y),
            Operator::Sub => x.checked_sub(y),
            Operator::Mul => x.checked_mul(y),
            Operator::Div | Operator::Mod if y == 0 => return Err(CalcError::DivisionByZero),
            // `checked_rem` fails only for i64::MIN % -1, which is 0.
            Operator::Mod => Some(x.checked_rem(y).unwrap_or(0)),
            // Exact when it divides; otherwise the decimal answer (7 / 2 = 3.5).
            Operator::Div => match x.checked_rem(y) {
                Some(0) | None => x.checked_div(y),
                Some(_) => return finite(x as f64 / y as f64, text),
            },
            Operator::Exp if y >= 0 => u32::try_from(y).ok().and_then(|y| x.checked_pow(y)),
            Operator::Exp if x == 0 => return Err(CalcError::DivisionByZero),
            Operator::Exp => return finite((x as f64).powf(y as f64), text),
            _ => unreachable!("only arithmetic operators reach binary()"),
        };
        return exact.map(Num::Int).ok_or_else(|| CalcError::Overflow(text()));
    }
    let (x, y) = (a.float(), b.float());
    let value = match op {
        Operator::Add => x + y,
        Operator::Sub => x - y,
        Operator::Mul => x * y,
        Operator::Div | Operator::Mod if y == 0.0 => return Err(CalcError::DivisionByZero),
        Operator::Div => x / y,
        Operator::Mod => x % y,
        Operator::Exp => x.powf(y),
        _ => unreachable!("only arithmetic operators reach binary()"),
    };
    finite(value, text)
}

fn function(name: &str, args: &[Num]) -> Result<Num, CalcError> {
    let arity = |wanted: &'static str| CalcError::Arity { name: name.to_owned(), wanted, got: args.len() };
    let text = || format!("{name}({})", args.iter().map(|a| a.display()).collect::<Vec<_>>().join(", "));
    match name {
        "min" | "max" => {
            let first = *args.first().ok_or_else(|| arity("one or more arguments"))?;
            let pick_min = name == "min";
            Ok(args[1..].iter().fold(first, |best, &n| {
                let better = if pick_min { n.float() < best.float() } else { n.float() > best.float() };
                if better { n } else { best }
            }))
        }
        "pow" | "atan2" | "hypot" => {
            let [a, b] = args else { return Err(arity("two arguments")) };
            match name {
                "pow" => binary(&Operator::Exp, *a, *b),
                "atan2" => finite(a.float().atan2(b.float()), text),
                _ => finite(a.float().hypot(b.float()), text),
            }
        }
        _ => {
            let &[x] = args else { return Err(arity("one argument")) };
            match (name, x) {
                ("abs", Num::Int(i)) => i.checked_abs().map(Num::Int).ok_or_else(|| CalcError::Overflow(text())),
                ("floor" | "ceil" | "round" | "trunc", Num::Int(i)) => Ok(Num::Int(i)),
                _ => match unary(name, x.float()) {
                    Some(value) => finite(value, text),
                    None => Err(CalcError::UnknownName(name.to_owned())),
                },
            }
        }
    }
}

fn is_function(name: &str) -> bool {
    matches!(name, "min" | "max" | "pow" | "atan2" | "hypot") || unary(name, 0.0).is_some()
}

/// The one-argument functions on floats; `None` for an unknown name.
fn unary(name: &str, x: f64) -> Option<f64> {
    Some(match name {
        "abs" => x.abs(),
        "sqrt" => x.sqrt(),
        "cbrt" => x.cbrt(),
        "exp" => x.exp(),
        "ln" => x.ln(),
        "log2" => x.log2(),
        "log10" => x.log10(),
        "sin" => x.sin(),
        "cos" => x.cos(),
        "tan" => x.tan(),
        "asin" => x.asin(),
        "acos" => x.acos(),
        "atan" => x.atan(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        "round" => x.round(),
        "trunc" => x.trunc(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(expr: &str) -> String {
        evaluate(expr).unwrap_or_else(|e| panic!("{expr}: {e}")).display()
    }

    fn err(expr: &str) -> CalcError {
        evaluate(expr).expect_err(expr)
    }

    #[test]
    fn integers_are_exact_and_floats_read_well() {
        for (expr, want) in [
            ("1234*5678", "7006652"),
            ("9223372036854775807", "9223372036854775807"),
            ("123456789 * 987654321", "121932631112635269"),
            ("2^62 + (2^62 - 1)", "9223372036854775807"),
            ("-3 - -4", "1"),
            ("(1 + 2) * 3 % 5", "4"),
            ("84 / 2", "42"),
            ("pow(3, 4)", "81"),
            ("abs(-5)", "5"),
            // Decimals when integers do not divide; floats rounded to 15 digits for reading.
            ("7 / 2", "3.5"),
            ("0.1 + 0.2", "0.3"),
            ("1 / 3", "0.333333333333333"),
            ("2^-1", "0.5"),
            ("sqrt(2) * sqrt(2)", "2"),
            ("round(2.5) + floor(-1.5)", "1"),
            ("max(1, 2.5, -3)", "2.5"),
            ("min(4, 2, 8)", "2"),
            ("2 * pi", "6.28318530717959"),
            ("-0.0 * 1", "0"),
        ] {
            assert_eq!(ok(expr), want, "{expr}");
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrong_number() {
        for expr in ["9223372036854775807 + 1", "2^63", "3037000500 * 3037000500", "-9223372036854775807 - 2", "abs(-9223372036854775807 - 1)"] {
            assert!(matches!(err(expr), CalcError::Overflow(_)), "{expr}: {:?}", err(expr));
        }
        assert!(matches!(err("99999999999999999999 + 1"), CalcError::LiteralTooLarge(n) if n == "99999999999999999999"));
        assert!(matches!(err("10.0^400"), CalcError::NotFinite(_)));
    }

    #[test]
    fn division_by_zero_and_undefined_results() {
        for expr in ["1/0", "5 % 0", "1.5 / 0", "1 / 0.0", "0^-1"] {
            assert_eq!(err(expr), CalcError::DivisionByZero, "{expr}");
        }
        assert!(matches!(err("sqrt(-1)"), CalcError::NotFinite(_)));
        assert!(matches!(err("ln(0)"), CalcError::NotFinite(_)));
    }

    #[test]
    fn what_is_not_arithmetic_is_refused() {
        assert_eq!(err("x + 1"), CalcError::UnknownName("x".into()));
        assert_eq!(err("frobnicate(3)"), CalcError::UnknownName("frobnicate".into()));
        assert_eq!(err("str::len(\"abc\")"), CalcError::UnknownName("str::len".into()));
        assert!(matches!(err("sqrt(1, 2)"), CalcError::Arity { .. }));
        assert!(matches!(err("pow(2)"), CalcError::Arity { .. }));
        for expr in ["a = 3", "1; 2", "\"text\"", "true", "1 < 2", "1 == 1", "(1, 2)", "a += 1", "!1"] {
            assert!(matches!(err(expr), CalcError::NotArithmetic(_) | CalcError::UnknownName(_)), "{expr}: {:?}", err(expr));
        }
        assert!(matches!(err("1 +"), CalcError::Syntax(_)));
        assert_eq!(err("   "), CalcError::Empty);
        assert_eq!(err("()"), CalcError::NotArithmetic("empty parentheses".into()));
    }

    #[test]
    fn length_is_bounded_and_deep_nesting_is_fine() {
        let long = "1+".repeat(500) + "1";
        assert_eq!(err(&long), CalcError::TooLong(1001));
        let deep = format!("{}1{}", "(".repeat(499), ")".repeat(499));
        assert_eq!(ok(&deep), "1");
        assert_eq!(ok(&"-".repeat(998).chars().chain("1".chars()).collect::<String>()), "1");
    }
}
