using System.Text;
using Segmentation.Core.Validation;

namespace Segmentation.Core.Rules;

/// <summary>A mistake in a rule written in the text syntax: the message and where in the catalog it is.</summary>
/// <param name="Message">What is wrong, with a suggestion where one is close.</param>
/// <param name="At">The file, line and column of the offending token.</param>
public sealed record RuleTextError(string Message, SourcePosition At);

/// <summary>
/// The text syntax of rules, e.g. <c>orders.aov &gt; 200 and orders.last_at within 30d and
/// email.opens_of_last_sends(3) &gt;= 3</c>. <see cref="Parse(SyntaxScalar, out RuleTextError?)"/> turns a text rule into the same syntax tree the
/// mapping form is read into (all/any/not groups, conditions with field, window, last, resolve and one
/// operator), so both forms go through one compiler with one set of semantics; <see cref="Format"/> writes any
/// rule tree back in the text syntax (the canonical form, which <see cref="Parse(SyntaxScalar, out RuleTextError?)"/> reads back to the same tree).
/// The grammar is in docs/rules.md.
/// </summary>
public static class RuleText
{
    /// <summary>The longest text rule accepted (characters).</summary>
    public const int MaxLength = 20_000;

    private const int MaxNesting = 32;

    // Operator words and the symbols that stand for them.
    private static readonly Dictionary<string, string> Symbols = new(StringComparer.Ordinal)
    {
        ["=="] = "eq", ["="] = "eq", ["!="] = "ne", ["<"] = "lt", ["<="] = "lte", [">"] = "gt", [">="] = "gte",
    };

    private static readonly Dictionary<string, string> SymbolOf = new(StringComparer.Ordinal)
    {
        ["eq"] = "==", ["ne"] = "!=", ["lt"] = "<", ["lte"] = "<=", ["gt"] = ">", ["gte"] = ">=",
    };

    private static readonly string[] Keywords = ["and", "or", "not", "in", "between", "exists", "window", "last", "resolve", "true", "false"];

    private static readonly string[] Qualifiers = ["window", "last", "resolve"];

    // What may follow a field, for messages and suggestions.
    private static readonly string[] OperatorWords = [.. RuleCompiler.Operators, "not", .. Qualifiers];

    /// <summary>
    /// Parses <paramref name="scalar"/>, a rule written as text in a catalog, into the rule tree of the mapping
    /// form, each node positioned in the catalog file. Returns null with <paramref name="error"/> when the text
    /// is not a rule.
    /// </summary>
    public static SyntaxNode? Parse(SyntaxScalar scalar, out RuleTextError? error)
    {
        ArgumentNullException.ThrowIfNull(scalar);
        var text = scalar.Value ?? "";
        var origin = scalar.At;

        // Columns are exact when the value is written on one line as it reads (plain, or quoted without escapes);
        // otherwise (folded lines, escapes, block scalars) the error names the scalar's line only.
        if (scalar.SourceLength == text.Length + (scalar.Quoted ? 2 : 0))
        {
            var contentColumn = origin.Column + (scalar.Quoted ? 1 : 0);
            return Parse(text, offset => origin with { Column = contentColumn + offset }, out error);
        }

        if (scalar.LiteralBlock)
        {
            // A literal block keeps the file's lines: line n of the rule is the n-th line after the indicator.
            var lines = new Lines(text);
            return Parse(text, offset => origin with { Line = origin.Line + lines.At(offset).Line, Column = 0 }, out error);
        }

        return Parse(text, _ => origin with { Column = 0 }, out error);
    }

    /// <summary>Parses <paramref name="text"/> as a rule (positions are line and column inside the text).</summary>
    public static SyntaxNode? Parse(string text, out RuleTextError? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = new Lines(text);
        return Parse(text, lines.At, out error);
    }

    private static SyntaxNode? Parse(string text, Func<int, SourcePosition> at, out RuleTextError? error)
    {
        error = null;
        if (text.Length > MaxLength)
        {
            error = new RuleTextError($"a text rule is at most {MaxLength:N0} characters (this one has {text.Length:N0}); split it into fragments", at(0));
            return null;
        }

        try
        {
            var tokens = Tokenize(text);
            var parser = new Parser(tokens, text.Length, at);
            var tree = parser.Expression(0);
            parser.ExpectEnd();
            return tree;
        }
        catch (RuleTextException ex)
        {
            error = new RuleTextError(ex.Message, at(ex.Offset));
            return null;
        }
    }

    /// <summary>
    /// Writes a rule tree (mapping form or text) in the text syntax: groups as <c>and</c>/<c>or</c> with
    /// parentheses around nested groups, <c>not</c>, conditions with symbols for comparisons, values quoted
    /// only where a bare word would not read back the same.
    /// </summary>
    public static string Format(SyntaxNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var sb = new StringBuilder();
        Write(sb, node, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, SyntaxNode node, int depth)
    {
        if (depth > MaxNesting * 2)
        {
            sb.Append('…');
            return;
        }

        if (node is SyntaxScalar scalar)
        {
            // A text rule inside a tree: its canonical form, or the text itself when it does not parse.
            var parsed = Parse(scalar.Value ?? "", out _);
            if (parsed is null)
            {
                sb.Append(scalar.Value);
            }
            else
            {
                Write(sb, parsed, depth + 1);
            }

            return;
        }

        if (node is not SyntaxMap map)
        {
            sb.Append('?');
            return;
        }

        if (map.Entries.Count == 1 && map.Entries[0].Name is "all" or "any" && map.Entries[0].Value is SyntaxList { Items.Count: 1 } single)
        {
            Write(sb, single.Items[0], depth + 1); // a one-item group is its item (the text form has none)
            return;
        }

        if (map.Entries.Count == 1 && map.Entries[0].Name is "all" or "any" && map.Entries[0].Value is SyntaxList items)
        {
            var joiner = map.Entries[0].Name == "all" ? " and " : " or ";
            for (var i = 0; i < items.Items.Count; i++)
            {
                if (i > 0)
                {
                    sb.Append(joiner);
                }

                var child = items.Items[i];
                var parenthesise = IsGroup(child);
                sb.Append(parenthesise ? "(" : "");
                Write(sb, child, depth + 1);
                sb.Append(parenthesise ? ")" : "");
            }

            return;
        }

        if (map.Entries.Count == 1 && map.Entries[0].Name == "not")
        {
            var child = map.Entries[0].Value;
            var parenthesise = IsGroup(child);
            sb.Append(parenthesise ? "not (" : "not ");
            Write(sb, child, depth + 1);
            sb.Append(parenthesise ? ")" : "");
            return;
        }

        if (map.Entries.Count == 1 && map.Entries[0].Name is "fragment" or "segment")
        {
            sb.Append(map.Entries[0].Name).Append('(').Append(map.Entries[0].Value.Text).Append(')');
            return;
        }

        WriteCondition(sb, map);
    }

    // A group that needs parentheses inside another group or after 'not': all/any (or a text rule that is one).
    private static bool IsGroup(SyntaxNode node) => node switch
    {
        SyntaxMap { Entries: [{ Name: "all" or "any", Value: SyntaxList { Items: [var only] } }] } => IsGroup(only),
        SyntaxMap m => m.Entries.Count == 1 && m.Entries[0].Name is "all" or "any",
        SyntaxScalar s => Parse(s.Value ?? "", out _) is SyntaxMap m && IsGroup(m),
        _ => false,
    };

    private static void WriteCondition(StringBuilder sb, SyntaxMap map)
    {
        var field = map.Get("field")?.Text ?? "?";
        sb.Append(field);
        if (map.Get("last")?.Text is { } last)
        {
            // field(3) reads back as 'last' only for digits; anything else is written out (and read back) as 'last "..."'.
            if (last.Length > 0 && last.All(char.IsAsciiDigit))
            {
                sb.Append('(').Append(last).Append(')');
            }
            else
            {
                sb.Append(" last ").Append(Value(last));
            }
        }

        if (map.Get("window")?.Text is { } window)
        {
            sb.Append(" window ").Append(Value(window));
        }

        if (map.Get("resolve")?.Text is { } resolve)
        {
            sb.Append(" resolve ").Append(Value(resolve));
        }

        foreach (var entry in map.Entries)
        {
            var op = entry.Name ?? "";
            if (!RuleCompiler.Operators.Contains(op))
            {
                continue;
            }

            var operand = entry.Value;
            switch (op)
            {
                case "exists" when bool.TryParse(operand.Text, out var exists):
                    sb.Append(exists ? " exists" : " not exists");
                    break;
                case "in" or "not_in":
                    sb.Append(op == "in" ? " in " : " not in ");
                    WriteList(sb, operand);
                    break;
                case "between" when operand is SyntaxList { Items.Count: 2 } range:
                    sb.Append(" between ").Append(Value(range.Items[0].Text)).Append(" and ").Append(Value(range.Items[1].Text));
                    break;
                default:
                    sb.Append(' ').Append(SymbolOf.GetValueOrDefault(op, op)).Append(' ');
                    if (operand is SyntaxList)
                    {
                        WriteList(sb, operand);
                    }
                    else
                    {
                        sb.Append(Value(operand.Text));
                    }

                    break;
            }
        }
    }

    private static void WriteList(StringBuilder sb, SyntaxNode operand)
    {
        if (operand is not SyntaxList list)
        {
            sb.Append(Value(operand.Text));
            return;
        }

        sb.Append('[');
        for (var i = 0; i < list.Items.Count; i++)
        {
            sb.Append(i > 0 ? ", " : "").Append(Value(list.Items[i].Text));
        }

        sb.Append(']');
    }

    // A value as a bare word when it reads back as the same word (null does not: bare, it is no value), else double-quoted.
    private static string Value(string? value)
    {
        if (!string.IsNullOrEmpty(value) && value.All(IsWordChar) && (value is "true" or "false" || !Keywords.Contains(value, StringComparer.OrdinalIgnoreCase))
            && !value.Equals("null", StringComparison.OrdinalIgnoreCase)) // bare, it would stand for no value
        {
            return value;
        }

        var sb = new StringBuilder("\"");
        foreach (var ch in value ?? "")
        {
            sb.Append(ch switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                _ => ch.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }

    private static bool IsWordChar(char ch) => char.IsLetterOrDigit(ch) || ch is '_' or '.' or '-' or '+' or ':' or '/' or '@' or '$' or '£' or '€' or '%';

    // Line and column (1-based) of an offset of a text, by a binary search of its line starts.
    private sealed class Lines(string text)
    {
        private readonly int[] _starts = [0, .. text.Select((ch, i) => (ch, i)).Where(c => c.ch == '\n').Select(c => c.i + 1)];

        public SourcePosition At(int offset)
        {
            var line = Array.BinarySearch(_starts, offset);
            line = line >= 0 ? line : ~line - 1;
            return new SourcePosition("rule", line + 1, offset - _starts[line] + 1);
        }
    }

    private enum Kind
    {
        Word,
        Text,
        Symbol,
        Open,
        Close,
        OpenList,
        CloseList,
        Comma,
    }

    private readonly record struct Token(Kind Kind, string Value, int Offset)
    {
        public bool Is(string word) => Kind == Kind.Word && string.Equals(Value, word, StringComparison.OrdinalIgnoreCase);

        public string Shown => Kind == Kind.Text ? $"\"{Value}\"" : Value;
    }

    private sealed class RuleTextException(string message, int offset) : Exception(message)
    {
        public int Offset { get; } = offset;
    }

    private static List<Token> Tokenize(string text)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < text.Length)
        {
            var ch = text[i];
            if (char.IsWhiteSpace(ch))
            {
                i++;
                continue;
            }

            var start = i;
            switch (ch)
            {
                case '(':
                    tokens.Add(new Token(Kind.Open, "(", i++));
                    continue;
                case ')':
                    tokens.Add(new Token(Kind.Close, ")", i++));
                    continue;
                case '[':
                    tokens.Add(new Token(Kind.OpenList, "[", i++));
                    continue;
                case ']':
                    tokens.Add(new Token(Kind.CloseList, "]", i++));
                    continue;
                case ',':
                    tokens.Add(new Token(Kind.Comma, ",", i++));
                    continue;
                case '"' or '\'':
                    tokens.Add(new Token(Kind.Text, Quoted(text, ref i), start));
                    continue;
                case '=' or '!' or '<' or '>':
                    var two = i + 1 < text.Length && text[i + 1] == '=';
                    var symbol = text.Substring(i, two ? 2 : 1);
                    if (!Symbols.ContainsKey(symbol))
                    {
                        throw new RuleTextException($"'{symbol}' is not an operator; comparisons are ==, !=, <, <=, > and >=", i);
                    }

                    tokens.Add(new Token(Kind.Symbol, symbol, i));
                    i += symbol.Length;
                    continue;
            }

            if (!IsWordChar(ch))
            {
                throw new RuleTextException($"unexpected character '{ch}'; quote values that contain it (\"...\")", i);
            }

            while (i < text.Length && IsWordChar(text[i]))
            {
                i++;
            }

            tokens.Add(new Token(Kind.Word, text[start..i], start));
        }

        return tokens;
    }

    // A quoted value. In double quotes \" is a quote and \\ a backslash; any other backslash is kept as written
    // (so a regex such as "^\d{3}" reads as written). Single quotes take no escapes.
    private static string Quoted(string text, ref int i)
    {
        var quote = text[i];
        var start = i++;
        var sb = new StringBuilder();
        while (i < text.Length)
        {
            var ch = text[i++];
            if (ch == quote)
            {
                return sb.ToString();
            }

            if (ch == '\\' && quote == '"' && i < text.Length && text[i] is '"' or '\\')
            {
                sb.Append(text[i++]);
                continue;
            }

            sb.Append(ch);
        }

        throw new RuleTextException($"the value starting here has no closing {quote}", start);
    }

    private sealed class Parser(List<Token> tokens, int end, Func<int, SourcePosition> at)
    {
        private int _next;

        private Token? Peek(int ahead = 0) => _next + ahead < tokens.Count ? tokens[_next + ahead] : null;

        private Token Take(string expected)
        {
            if (Peek() is not { } token)
            {
                throw new RuleTextException($"the rule ends where {expected} was expected", end);
            }

            _next++;
            return token;
        }

        private SyntaxScalar Scalar(string? value, int offset) => new(value, at(offset));

        private SyntaxMap Map(int offset, params (string Key, int KeyOffset, SyntaxNode Value)[] entries) =>
            new([.. entries.Select(e => new SyntaxEntry(Scalar(e.Key, e.KeyOffset), e.Value))], at(offset));

        public void ExpectEnd()
        {
            if (Peek() is { } extra)
            {
                var hint = extra.Kind == Kind.Close ? "a ')' without its '('" : "join conditions with 'and' or 'or'";
                throw new RuleTextException($"unexpected {extra.Shown} after a complete rule: {hint}", extra.Offset);
            }
        }

        // or := and ('or' and)*
        public SyntaxNode Expression(int depth)
        {
            if (depth > MaxNesting)
            {
                throw new RuleTextException($"the rule is nested deeper than {MaxNesting} levels", Peek()?.Offset ?? end);
            }

            var start = Peek()?.Offset ?? end;
            var first = Conjunction(depth);
            if (Peek() is not { } t || !t.Is("or"))
            {
                return first;
            }

            var items = new List<SyntaxNode> { first };
            while (Peek() is { } or && or.Is("or"))
            {
                _next++;
                items.Add(Conjunction(depth));
            }

            return Map(start, ("any", start, new SyntaxList(items, at(start))));
        }

        // and := unary ('and' unary)*
        private SyntaxNode Conjunction(int depth)
        {
            var start = Peek()?.Offset ?? end;
            var first = Unary(depth);
            if (Peek() is not { } t || !t.Is("and"))
            {
                return first;
            }

            var items = new List<SyntaxNode> { first };
            while (Peek() is { } and && and.Is("and"))
            {
                _next++;
                items.Add(Unary(depth));
            }

            return Map(start, ("all", start, new SyntaxList(items, at(start))));
        }

        // unary := 'not' unary | '(' or ')' | fragment(name) | segment(name) | condition
        private SyntaxNode Unary(int depth)
        {
            var token = Take("a condition");
            if (token.Is("not"))
            {
                if (depth > MaxNesting)
                {
                    throw new RuleTextException($"the rule is nested deeper than {MaxNesting} levels", token.Offset);
                }

                return Map(token.Offset, ("not", token.Offset, Unary(depth + 1)));
            }

            if (token.Kind == Kind.Open)
            {
                var inner = Expression(depth + 1);
                var close = Take("')'");
                if (close.Kind != Kind.Close)
                {
                    throw new RuleTextException($"expected ')' to close the '(' at column {at(token.Offset).Column}, found {close.Shown}", close.Offset);
                }

                return inner;
            }

            if (token.Kind != Kind.Word)
            {
                throw new RuleTextException($"expected a field (such as orders.count), 'not' or '(' but found {token.Shown}", token.Offset);
            }

            if ((token.Is("fragment") || token.Is("segment")) && Peek() is { Kind: Kind.Open })
            {
                _next++;
                var name = Take("a name");
                var close = Take("')'");
                if (name.Kind is not (Kind.Word or Kind.Text) || close.Kind != Kind.Close)
                {
                    throw new RuleTextException($"'{token.Value}(name)' takes one name, e.g. {token.Value.ToLowerInvariant()}(engaged)", name.Offset);
                }

                return Map(token.Offset, (token.Value.ToLowerInvariant(), token.Offset, Scalar(name.Value, name.Offset)));
            }

            return Condition(token);
        }

        private SyntaxMap Condition(Token field)
        {
            if (Array.IndexOf(Keywords, field.Value.ToLowerInvariant()) >= 0)
            {
                throw new RuleTextException($"expected a field before '{field.Value}'", field.Offset);
            }

            var entries = new List<(string, int, SyntaxNode)> { ("field", field.Offset, Scalar(field.Value, field.Offset)) };

            // field(3) = last 3 sends; field(30d) = a window.
            if (Peek() is { Kind: Kind.Open } open)
            {
                _next++;
                var arg = Take("a number of sends or a window");
                var close = Take("')'");
                if (arg.Kind != Kind.Word || close.Kind != Kind.Close)
                {
                    throw new RuleTextException($"'{field.Value}(...)' takes a number of sends (e.g. (3)) or a window (e.g. (30d))", open.Offset);
                }

                var key = arg.Value.All(char.IsAsciiDigit) ? "last" : "window";
                entries.Add((key, arg.Offset, Scalar(arg.Value, arg.Offset)));
            }

            while (Peek() is { } q && Qualifiers.Any(q.Is))
            {
                _next++;
                var key = q.Value.ToLowerInvariant();
                if (entries.Any(e => e.Item1 == key))
                {
                    throw new RuleTextException($"'{key}' is given twice for '{field.Value}'", q.Offset);
                }

                var value = Take($"a value after '{q.Value}'");
                entries.Add((key, q.Offset, Scalar(value.Value, value.Offset)));
            }

            var opToken = Take($"an operator after '{field.Value}'");
            string op;
            SyntaxNode operand;
            if (opToken.Kind == Kind.Symbol)
            {
                op = Symbols[opToken.Value];
                operand = ValueOrList();
            }
            else if (opToken.Kind != Kind.Word)
            {
                throw new RuleTextException($"expected an operator after '{field.Value}' ({OperatorList}), found {opToken.Shown}", opToken.Offset);
            }
            else if (opToken.Is("not"))
            {
                var what = Take("'in' or 'exists' after 'not'");
                if (what.Is("in"))
                {
                    op = "not_in";
                    operand = List();
                }
                else if (what.Is("exists"))
                {
                    op = "exists";
                    operand = Scalar("false", what.Offset);
                }
                else
                {
                    throw new RuleTextException($"after a field, 'not' goes with 'in' or 'exists' (found {what.Shown}); to negate a condition write 'not' before it", what.Offset);
                }
            }
            else if (opToken.Is("exists"))
            {
                op = "exists";
                operand = Peek() is { } b && (b.Is("true") || b.Is("false")) ? Scalar(Take("true or false").Value.ToLowerInvariant(), b.Offset) : Scalar("true", opToken.Offset);
            }
            else if (opToken.Is("between"))
            {
                op = "between";
                var low = Value();
                var and = Take("'and' between the low and high values");
                if (!and.Is("and"))
                {
                    throw new RuleTextException($"'between' is written 'between LOW and HIGH' (found {and.Shown})", and.Offset);
                }

                var high = Value();
                operand = new SyntaxList([low, high], at(opToken.Offset));
            }
            else if (opToken.Is("in") || opToken.Is("not_in"))
            {
                op = opToken.Value.ToLowerInvariant();
                operand = List();
            }
            else if (RuleCompiler.Operators.Contains(opToken.Value.ToLowerInvariant()))
            {
                op = opToken.Value.ToLowerInvariant();
                operand = ValueOrList();
            }
            else
            {
                throw new RuleTextException($"unknown operator '{opToken.Value}' after '{field.Value}'{Suggestions.DidYouMean(opToken.Value, OperatorWords)}; use one of {OperatorList}", opToken.Offset);
            }

            entries.Add((op, opToken.Offset, operand));
            return Map(field.Offset, [.. entries]);
        }

        private static string OperatorList => "==, !=, <, <=, >, >=, in, not in, between, contains, starts_with, regex, within, older_than, exists, not exists";

        private SyntaxNode ValueOrList() => Peek() is { Kind: Kind.OpenList } ? List() : Value();

        private SyntaxScalar Value()
        {
            var token = Take("a value");
            if (token.Kind is not (Kind.Word or Kind.Text) || (token.Kind == Kind.Word && (token.Is("and") || token.Is("or") || token.Is("not"))))
            {
                throw new RuleTextException($"expected a value, found {token.Shown}", token.Offset);
            }

            return Scalar(token.Value, token.Offset) with { Quoted = token.Kind == Kind.Text }; // "null" in quotes is the text
        }

        private SyntaxList List()
        {
            var open = Take("a list such as [a, b]");
            if (open.Kind != Kind.OpenList)
            {
                throw new RuleTextException($"expected a list such as [a, b], found {open.Shown}", open.Offset);
            }

            var items = new List<SyntaxNode>();
            while (true)
            {
                items.Add(Value());
                var next = Take("',' or ']'");
                if (next.Kind == Kind.CloseList)
                {
                    return new SyntaxList(items, at(open.Offset));
                }

                if (next.Kind != Kind.Comma)
                {
                    throw new RuleTextException($"expected ',' or ']' in the list, found {next.Shown}", next.Offset);
                }
            }
        }
    }
}
