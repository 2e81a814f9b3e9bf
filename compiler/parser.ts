/**
 * Phase 2: tokens -> AST. A Chevrotain embedded-actions parser for the .mdl grammar; `parse()`
 * returns diagnostics instead of throwing.
 *
 *   file      := (import | block | spec)*
 *   block     := "block" NAME "(" params ")" "{" (let | require | forward)* "}"
 *   forward   := "forward" "(" NAME ":" shape, ... ")" "->" (shape | "(" shape, ... ")") "{" stmt* "}"
 *   stmt      := NAME ("," NAME)* "=" expr | NAME "." NAME "(" expr, ... ")" | "for" NAME "in" expr ".." expr "{" stmt* "}"
 *              | "if" expr "{" stmt* "}" ("else" ...)? | "return" expr ("," expr)*
 *   spec      := "spec" NAME STRING? "{" (param | let | require | "network" ":" call | section | variant)* "}"
 *   section   := NAME "{" (NAME ":" expr)* "}"
 *   variant   := "variant" NAME STRING? "{" (NAME ("." NAME)? "=" expr)* "}"   (a param, or section.setting)
 *   expr      := ternary with || && comparisons + - * / div % unary; calls `f(x, name: v) as label`
 */
import { EmbeddedActionsParser, type IToken } from "chevrotain";
import * as A from "./ast.ts";
import { diag, joinSpans, type Diagnostic, type DiagnosticCode, type Span } from "./diagnostics.ts";
import * as T from "./lexer.ts";

function unquote(image: string): string {
  return image.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c));
}

class MdlParser extends EmbeddedActionsParser {
  file = "<input>";

  constructor() {
    super(T.allTokens, { recoveryEnabled: false, maxLookahead: 3, skipValidations: true });
    this.performSelfAnalysis();
  }

  /** The next token (after an exception: where parsing stopped). */
  current(): IToken | undefined {
    return this.LA(1);
  }

  private sp(a: IToken, b: IToken = a): Span {
    return T.tokenSpan(this.file, a, b);
  }

  // ---------------------------------------------------------------- file

  public sourceFile = this.RULE("sourceFile", (): A.SourceFile => {
    const imports: A.ImportDecl[] = [];
    const blocks: A.BlockDecl[] = [];
    const specs: A.SpecDecl[] = [];
    this.MANY(() => {
      this.OR([
        { ALT: () => { const i = this.SUBRULE(this.importDecl); this.ACTION(() => imports.push(i)); } },
        { ALT: () => { const b = this.SUBRULE(this.blockDecl); this.ACTION(() => blocks.push(b)); } },
        { ALT: () => { const s = this.SUBRULE(this.specDecl); this.ACTION(() => specs.push(s)); } },
      ]);
    });
    return { path: this.file, imports, blocks, specs };
  });

  private importDecl = this.RULE("importDecl", (): A.ImportDecl => {
    const k = this.CONSUME(T.Import);
    const s = this.CONSUME(T.StringLit);
    return { kind: "import", path: this.ACTION(() => unquote(s.image)), span: this.sp(k, s) };
  });

  // ---------------------------------------------------------------- blocks

  private blockDecl = this.RULE("blockDecl", (): A.BlockDecl => {
    const k = this.CONSUME(T.Block);
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.LParen);
    const params: A.ParamDecl[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const p = this.SUBRULE(this.paramDecl);
        this.ACTION(() => params.push(p));
      },
    });
    this.CONSUME(T.RParen);
    this.CONSUME(T.LCurly);
    const lets: A.LetDecl[] = [];
    const requires: A.RequireDecl[] = [];
    let forward: A.Forward | undefined;
    this.MANY(() => {
      this.OR([
        { ALT: () => { const l = this.SUBRULE(this.letDecl); this.ACTION(() => lets.push(l)); } },
        { ALT: () => { const r = this.SUBRULE(this.requireDecl); this.ACTION(() => requires.push(r)); } },
        { ALT: () => { forward = this.SUBRULE(this.forwardDecl); } },
      ]);
    });
    const end = this.CONSUME(T.RCurly);
    return { kind: "block", name: name.image, nameSpan: this.sp(name), params, lets, requires, forward, span: this.sp(k, end), file: this.file };
  });

  private paramDecl = this.RULE("paramDecl", (): A.ParamDecl => {
    const name = this.CONSUME(T.Ident);
    let type: A.ParamType | undefined;
    let def: A.Expr | undefined;
    let last = name;
    this.OPTION(() => {
      this.CONSUME(T.Colon);
      const t = this.CONSUME2(T.Ident);
      type = t.image as A.ParamType;
      last = t;
      // `widths: int[]`: a list of numbers
      this.OPTION3(() => {
        this.CONSUME(T.LBracket);
        last = this.CONSUME(T.RBracket);
        type = `${t.image}[]` as A.ParamType;
      });
    });
    this.OPTION2(() => {
      this.CONSUME(T.Eq);
      def = this.SUBRULE(this.expr);
    });
    return this.ACTION(() => ({ name: name.image, nameSpan: this.sp(name), type, default: def, span: def ? joinSpans(this.sp(name), def.span) : this.sp(name, last) }));
  });

  private letDecl = this.RULE("letDecl", (): A.LetDecl => {
    const k = this.CONSUME(T.Let);
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.Eq);
    const value = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ name: name.image, nameSpan: this.sp(name), value, span: joinSpans(this.sp(k), value.span) }));
  });

  private requireDecl = this.RULE("requireDecl", (): A.RequireDecl => {
    const k = this.CONSUME(T.Require);
    const cond = this.SUBRULE(this.expr);
    let message: string | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Comma);
      const s = this.CONSUME(T.StringLit);
      message = this.ACTION(() => unquote(s.image));
    });
    return this.ACTION(() => ({ cond, message, span: joinSpans(this.sp(k), cond.span) }));
  });

  private forwardDecl = this.RULE("forwardDecl", (): A.Forward => {
    const k = this.CONSUME(T.Forward);
    this.CONSUME(T.LParen);
    const inputs: A.TensorParam[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const n = this.CONSUME(T.Ident);
        this.CONSUME(T.Colon);
        const shape = this.SUBRULE(this.shapeType);
        this.ACTION(() => inputs.push({ name: n.image, nameSpan: this.sp(n), shape, span: joinSpans(this.sp(n), shape.span) }));
      },
    });
    this.CONSUME(T.RParen);
    this.CONSUME(T.Arrow);
    const outputs: A.ShapeExpr[] = [];
    this.OR([
      { ALT: () => { const s = this.SUBRULE2(this.shapeType); this.ACTION(() => outputs.push(s)); } },
      {
        ALT: () => {
          this.CONSUME2(T.LParen);
          this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const s = this.SUBRULE3(this.shapeType); this.ACTION(() => outputs.push(s)); } });
          this.CONSUME2(T.RParen);
        },
      },
    ]);
    const body = this.SUBRULE(this.stmtBlock);
    return this.ACTION(() => ({ inputs, outputs, body: body.stmts, span: this.sp(k, body.end) }));
  });

  private shapeType = this.RULE("shapeType", (): A.ShapeExpr => {
    let dtype: "float32" | "int32" = "float32";
    let first: IToken | undefined;
    this.OPTION(() => {
      const d = this.CONSUME(T.Ident);
      first = d;
      dtype = d.image as "float32" | "int32";
    });
    const lb = this.CONSUME(T.LBracket);
    const dims: A.Expr[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE(this.expr); this.ACTION(() => dims.push(e)); } });
    const rb = this.CONSUME(T.RBracket);
    return this.ACTION(() => {
      if (first && first.image !== "int32" && first.image !== "float32") throw this.shapeDtypeError(first);
      return { kind: "shape", dtype, dims, span: this.sp(first ?? lb, rb) };
    });
  });

  private shapeDtypeError(t: IToken): Error {
    return Object.assign(new Error(`unknown tensor element type '${t.image}': use float32 (default) or int32`), { token: t, isMdl: true });
  }

  // ---------------------------------------------------------------- statements

  private stmtBlock = this.RULE("stmtBlock", (): { stmts: A.Stmt[]; end: IToken } => {
    this.CONSUME(T.LCurly);
    const stmts: A.Stmt[] = [];
    this.MANY(() => {
      const s = this.SUBRULE(this.stmt);
      this.ACTION(() => stmts.push(s));
    });
    const end = this.CONSUME(T.RCurly);
    return { stmts, end };
  });

  private stmt = this.RULE("stmt", (): A.Stmt =>
    this.OR([
      { GATE: () => this.LA(2).tokenType === T.Dot, ALT: () => this.SUBRULE(this.methodStmt) },
      { ALT: () => this.SUBRULE(this.assignStmt) },
      { ALT: () => this.SUBRULE(this.forStmt) },
      { ALT: () => this.SUBRULE(this.ifStmt) },
      { ALT: () => this.SUBRULE(this.returnStmt) },
    ]),
  );

  private assignStmt = this.RULE("assignStmt", (): A.Assign => {
    const targets: A.Ident[] = [];
    this.AT_LEAST_ONE_SEP({
      SEP: T.Comma,
      DEF: () => {
        const t = this.CONSUME(T.Ident);
        this.ACTION(() => targets.push({ kind: "ident", name: t.image, span: this.sp(t) }));
      },
    });
    this.CONSUME(T.Eq);
    const value = this.SUBRULE(this.expr);
    return this.ACTION(() => ({ kind: "assign", targets, value, span: joinSpans(targets[0].span, value.span) }));
  });

  private methodStmt = this.RULE("methodStmt", (): A.MethodStmt => {
    const call = this.SUBRULE(this.identOrCall);
    return this.ACTION(() => {
      if (call.kind !== "method") throw Object.assign(new Error("expected a statement: a method call such as `skips.append(x)`"), { span: call.span, isMdl: true });
      return { kind: "method", call, span: call.span } as A.MethodStmt;
    });
  });

  private forStmt = this.RULE("forStmt", (): A.ForStmt => {
    const k = this.CONSUME(T.For);
    const v = this.CONSUME(T.Ident);
    this.CONSUME(T.In);
    const from = this.SUBRULE(this.expr);
    this.CONSUME(T.DotDot);
    const to = this.SUBRULE2(this.expr);
    const body = this.SUBRULE(this.stmtBlock);
    return this.ACTION(() => ({ kind: "for", variable: { kind: "ident", name: v.image, span: this.sp(v) }, from, to, body: body.stmts, span: this.sp(k, body.end) }));
  });

  private ifStmt = this.RULE("ifStmt", (): A.IfStmt => {
    const k = this.CONSUME(T.If);
    const cond = this.SUBRULE(this.expr);
    const then = this.SUBRULE(this.stmtBlock);
    let els: A.Stmt[] | undefined;
    let end = then.end;
    this.OPTION(() => {
      this.CONSUME(T.Else);
      this.OR([
        {
          ALT: () => {
            const nested = this.SUBRULE(this.ifStmt);
            this.ACTION(() => {
              els = [nested];
            });
          },
        },
        {
          ALT: () => {
            const b = this.SUBRULE2(this.stmtBlock);
            this.ACTION(() => {
              els = b.stmts;
              end = b.end;
            });
          },
        },
      ]);
    });
    return this.ACTION(() => ({ kind: "if", cond, then: then.stmts, else: els, span: this.sp(k, end) }));
  });

  private returnStmt = this.RULE("returnStmt", (): A.ReturnStmt => {
    const k = this.CONSUME(T.Return);
    const values: A.Expr[] = [];
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE(this.expr); this.ACTION(() => values.push(e)); } });
    return this.ACTION(() => ({ kind: "return", values, span: joinSpans(this.sp(k), values[values.length - 1].span) }));
  });

  // ---------------------------------------------------------------- specs

  private specDecl = this.RULE("specDecl", (): A.SpecDecl => {
    const k = this.CONSUME(T.Spec);
    const name = this.CONSUME(T.Ident);
    let title: string | undefined;
    this.OPTION(() => {
      const s = this.CONSUME(T.StringLit);
      title = this.ACTION(() => unquote(s.image));
    });
    this.CONSUME(T.LCurly);
    const params: A.ParamDecl[] = [];
    const lets: A.LetDecl[] = [];
    const requires: A.RequireDecl[] = [];
    const sections: A.Section[] = [];
    const variants: A.VariantDecl[] = [];
    let network: A.Call | undefined;
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(T.Param);
            const p = this.SUBRULE(this.paramDecl);
            this.ACTION(() => params.push(p));
          },
        },
        { ALT: () => { const l = this.SUBRULE(this.letDecl); this.ACTION(() => lets.push(l)); } },
        { ALT: () => { const r = this.SUBRULE(this.requireDecl); this.ACTION(() => requires.push(r)); } },
        {
          ALT: () => {
            this.CONSUME(T.Network);
            this.CONSUME(T.Colon);
            const c = this.SUBRULE(this.expr);
            this.ACTION(() => {
              if (c.kind !== "call") throw Object.assign(new Error("`network:` must be a call of a block, e.g. `network: mmdit(width: 384)`"), { span: c.span, isMdl: true });
              network = c;
            });
          },
        },
        { ALT: () => { const s = this.SUBRULE(this.section); this.ACTION(() => sections.push(s)); } },
        { ALT: () => { const v = this.SUBRULE(this.variantDecl); this.ACTION(() => variants.push(v)); } },
      ]);
    });
    const end = this.CONSUME(T.RCurly);
    return { kind: "spec", name: name.image, nameSpan: this.sp(name), title, params, lets, requires, sections, network, variants, span: this.sp(k, end), file: this.file };
  });

  private section = this.RULE("section", (): A.Section => {
    const name = this.CONSUME(T.Ident);
    this.CONSUME(T.LCurly);
    const settings: A.Setting[] = [];
    this.MANY(() => {
      const key = this.CONSUME2(T.Ident);
      this.CONSUME(T.Colon);
      const value = this.SUBRULE(this.expr);
      this.OPTION(() => this.OR([{ ALT: () => this.CONSUME(T.Comma) }, { ALT: () => this.CONSUME(T.Semi) }]));
      this.ACTION(() => settings.push({ key: key.image, keySpan: this.sp(key), value, span: joinSpans(this.sp(key), value.span) }));
    });
    const end = this.CONSUME(T.RCurly);
    return { name: name.image, nameSpan: this.sp(name), settings, span: this.sp(name, end) };
  });

  private variantDecl = this.RULE("variantDecl", (): A.VariantDecl => {
    const k = this.CONSUME(T.Variant);
    const name = this.CONSUME(T.Ident);
    let doc: string | undefined;
    this.OPTION(() => {
      const s = this.CONSUME(T.StringLit);
      doc = this.ACTION(() => unquote(s.image));
    });
    this.CONSUME(T.LCurly);
    const overrides: A.Override[] = [];
    this.MANY(() => {
      const key = this.CONSUME2(T.Ident);
      let sub: IToken | undefined;
      this.OPTION3(() => {
        this.CONSUME(T.Dot);
        sub = this.CONSUME3(T.Ident);
      });
      this.CONSUME(T.Eq);
      const value = this.SUBRULE(this.expr);
      this.OPTION2(() => this.OR([{ ALT: () => this.CONSUME(T.Comma) }, { ALT: () => this.CONSUME(T.Semi) }]));
      this.ACTION(() => {
        const nameSpan = sub ? this.sp(key, sub) : this.sp(key);
        overrides.push({ name: sub ? `${key.image}.${sub.image}` : key.image, nameSpan, value, span: joinSpans(nameSpan, value.span) });
      });
    });
    const end = this.CONSUME(T.RCurly);
    return { name: name.image, nameSpan: this.sp(name), doc, overrides, span: this.sp(k, end) };
  });

  // ---------------------------------------------------------------- expressions

  public expr = this.RULE("expr", (): A.Expr => {
    const cond = this.SUBRULE(this.orExpr);
    let result = cond;
    this.OPTION(() => {
      this.CONSUME(T.Question);
      const a = this.SUBRULE(this.expr);
      this.CONSUME(T.Colon);
      const b = this.SUBRULE2(this.expr);
      result = this.ACTION(() => deep({ kind: "ternary", cond, then: a, else: b, span: joinSpans(cond.span, b.span) } as A.Ternary, b.span, [cond, a, b]));
    });
    return result;
  });

  private orExpr = this.RULE("orExpr", (): A.Expr => {
    let left = this.SUBRULE(this.andExpr);
    this.MANY(() => {
      this.CONSUME(T.OrOr);
      const right = this.SUBRULE2(this.andExpr);
      left = this.ACTION(() => bin("||", left, right));
    });
    return left;
  });

  private andExpr = this.RULE("andExpr", (): A.Expr => {
    let left = this.SUBRULE(this.cmpExpr);
    this.MANY(() => {
      this.CONSUME(T.AndAnd);
      const right = this.SUBRULE2(this.cmpExpr);
      left = this.ACTION(() => bin("&&", left, right));
    });
    return left;
  });

  private cmpExpr = this.RULE("cmpExpr", (): A.Expr => {
    let left = this.SUBRULE(this.addExpr);
    this.OPTION(() => {
      const op = this.OR([
        { ALT: () => this.CONSUME(T.EqEq) },
        { ALT: () => this.CONSUME(T.NotEq) },
        { ALT: () => this.CONSUME(T.LtEq) },
        { ALT: () => this.CONSUME(T.GtEq) },
        { ALT: () => this.CONSUME(T.Lt) },
        { ALT: () => this.CONSUME(T.Gt) },
      ]);
      const right = this.SUBRULE2(this.addExpr);
      left = this.ACTION(() => bin(op.image as A.BinaryOp, left, right));
    });
    return left;
  });

  private addExpr = this.RULE("addExpr", (): A.Expr => {
    let left = this.SUBRULE(this.mulExpr);
    this.MANY(() => {
      const op = this.OR([{ ALT: () => this.CONSUME(T.Plus) }, { ALT: () => this.CONSUME(T.Minus) }]);
      const right = this.SUBRULE2(this.mulExpr);
      left = this.ACTION(() => bin(op.image as A.BinaryOp, left, right));
    });
    return left;
  });

  private mulExpr = this.RULE("mulExpr", (): A.Expr => {
    let left = this.SUBRULE(this.unary);
    // gated on the loop itself: a name after an operand continues the expression only as `div`
    this.MANY({
      GATE: () => this.LA(1).tokenType !== T.Ident || isDivOperator(this.LA(1), this.LA(2)),
      DEF: () => {
        const op = this.OR([
          { ALT: () => this.CONSUME(T.Star) },
          { ALT: () => this.CONSUME(T.Slash) },
          { ALT: () => this.CONSUME(T.Percent) },
          { GATE: () => isDivOperator(this.LA(1), this.LA(2)), ALT: () => this.CONSUME(T.Ident) },
        ]);
        const right = this.SUBRULE2(this.unary);
        left = this.ACTION(() => bin(op.image as A.BinaryOp, left, right));
      },
    });
    return left;
  });

  private unary = this.RULE("unary", (): A.Expr =>
    this.OR([
      {
        ALT: () => {
          const op = this.OR2([{ ALT: () => this.CONSUME(T.Minus) }, { ALT: () => this.CONSUME(T.Bang) }]);
          const operand = this.SUBRULE(this.unary);
          return this.ACTION(() => deep({ kind: "unary", op: op.image as "-" | "!", operand, span: joinSpans(this.sp(op), operand.span) } as A.Unary, this.sp(op), [operand]));
        },
      },
      { ALT: () => this.SUBRULE(this.primary) },
    ]),
  );

  private primary = this.RULE("primary", (): A.Expr =>
    this.OR([
      {
        ALT: () => {
          const t = this.CONSUME(T.IntLit);
          return this.ACTION(() => ({ kind: "number", value: Number(t.image), isInt: true, text: t.image, span: this.sp(t) }) as A.NumberLit);
        },
      },
      {
        ALT: () => {
          const t = this.CONSUME(T.FloatLit);
          return this.ACTION(() => ({ kind: "number", value: Number(t.image), isInt: false, text: t.image, span: this.sp(t) }) as A.NumberLit);
        },
      },
      {
        ALT: () => {
          const t = this.CONSUME(T.StringLit);
          return this.ACTION(() => ({ kind: "string", value: unquote(t.image), span: this.sp(t) }) as A.StringLit);
        },
      },
      { ALT: () => { const t = this.CONSUME(T.True); return this.ACTION(() => ({ kind: "bool", value: true, span: this.sp(t) }) as A.BoolLit); } },
      { ALT: () => { const t = this.CONSUME(T.False); return this.ACTION(() => ({ kind: "bool", value: false, span: this.sp(t) }) as A.BoolLit); } },
      { GATE: () => isDtype(this.LA(1)) && this.LA(2).tokenType === T.LBracket, ALT: () => this.SUBRULE(this.shapeType) },
      { ALT: () => this.SUBRULE(this.identOrCall) },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          const e = this.SUBRULE(this.expr);
          this.CONSUME(T.RParen);
          return e;
        },
      },
      {
        ALT: () => {
          const lb = this.CONSUME(T.LBracket);
          const items: A.Expr[] = [];
          this.MANY_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE2(this.expr); this.ACTION(() => items.push(e)); } });
          const rb = this.CONSUME(T.RBracket);
          return this.ACTION(() => deep({ kind: "list", items, span: this.sp(lb, rb) } as A.ListExpr, this.sp(lb), items));
        },
      },
    ]),
  );

  private identOrCall = this.RULE("identOrCall", (): A.Expr => {
    const name = this.CONSUME(T.Ident);
    const ident = this.ACTION(() => ({ kind: "ident", name: name.image, span: this.sp(name) }) as A.Ident);
    let result: A.Expr = ident;
    this.OPTION(() => {
      result = this.OR([
        { ALT: () => this.SUBRULE(this.callRest, { ARGS: [name] }) },
        { ALT: () => this.SUBRULE(this.methodRest, { ARGS: [name, ident] }) },
        { ALT: () => this.SUBRULE(this.indexRest, { ARGS: [name, ident] }) },
      ]);
    });
    return result;
  });

  /** `f(args) as label` after the name `f`. */
  private callRest = this.RULE("callRest", (name: IToken): A.Call => {
    this.CONSUME(T.LParen);
    const args: A.Arg[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const a = this.SUBRULE(this.arg);
        this.ACTION(() => args.push(a));
      },
    });
    const rp = this.CONSUME(T.RParen);
    let label: A.Label | undefined;
    this.OPTION(() => {
      this.CONSUME(T.As);
      label = this.SUBRULE(this.label);
    });
    return this.ACTION(
      () => deep({ kind: "call", callee: name.image, calleeSpan: this.sp(name), args, label, span: label ? joinSpans(this.sp(name), label.span) : this.sp(name, rp) } as A.Call, this.sp(name), args.map((a) => a.value)),
    );
  });

  /** `.append(x)`, `.pop()` after a list's name: its methods. */
  private methodRest = this.RULE("methodRest", (name: IToken, target: A.Ident): A.MethodCall => {
    this.CONSUME(T.Dot);
    const m = this.CONSUME(T.Ident);
    this.CONSUME(T.LParen);
    const args: A.Expr[] = [];
    this.MANY_SEP({ SEP: T.Comma, DEF: () => { const e = this.SUBRULE(this.expr); this.ACTION(() => args.push(e)); } });
    const rp = this.CONSUME(T.RParen);
    return this.ACTION(() => deep({ kind: "method", target, method: m.image, methodSpan: this.sp(m), args, span: this.sp(name, rp) } as A.MethodCall, this.sp(name), args));
  });

  /** `[i]` after a list's name: an element. */
  private indexRest = this.RULE("indexRest", (name: IToken, target: A.Ident): A.IndexExpr => {
    this.CONSUME(T.LBracket);
    const index = this.SUBRULE(this.expr);
    const rb = this.CONSUME(T.RBracket);
    return this.ACTION(() => deep({ kind: "index", target, index, span: this.sp(name, rb) } as A.IndexExpr, this.sp(name), [index]));
  });

  private arg = this.RULE("arg", (): A.Arg =>
    this.OR([
      {
        GATE: () => this.LA(1).tokenType === T.Ident && this.LA(2).tokenType === T.Colon,
        ALT: () => {
          const n = this.CONSUME(T.Ident);
          this.CONSUME(T.Colon);
          const value = this.SUBRULE(this.expr);
          return this.ACTION(() => ({ name: n.image, nameSpan: this.sp(n), value, span: joinSpans(this.sp(n), value.span) }));
        },
      },
      {
        ALT: () => {
          const value = this.SUBRULE2(this.expr);
          return this.ACTION(() => ({ value, span: value.span }));
        },
      },
    ]),
  );

  private label = this.RULE("label", (): A.Label => {
    const first = this.CONSUME(T.Ident);
    const segments: A.LabelSegment[] = [];
    this.ACTION(() => segments.push({ name: first.image, span: this.sp(first) }));
    let last: Span = this.ACTION(() => this.sp(first));
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            this.CONSUME(T.Dot);
            const seg = this.OR2([{ ALT: () => this.CONSUME2(T.Ident) }, { ALT: () => this.CONSUME(T.IntLit) }]);
            this.ACTION(() => {
              segments.push({ name: seg.image, span: this.sp(seg) });
              last = this.sp(seg);
            });
          },
        },
        {
          ALT: () => {
            const lb = this.CONSUME(T.LBracket);
            const e = this.SUBRULE(this.expr);
            const rb = this.CONSUME(T.RBracket);
            this.ACTION(() => {
              segments.push({ index: e, span: this.sp(lb, rb) });
              last = this.sp(rb);
            });
          },
        },
      ]);
    });
    return this.ACTION(() => ({ segments, span: joinSpans(this.sp(first), last) }));
  });
}

/**
 * `a div b` (integer floor division): `div` is an operator where an expression continues, and
 * stays a name elsewhere: a statement `div = ...` or `div, x = ...`, a setting `div: ...`.
 */
function isDivOperator(t: IToken, next: IToken): boolean {
  return t.tokenType === T.Ident && t.image === "div" && next.tokenType !== T.Eq && next.tokenType !== T.Comma && next.tokenType !== T.Colon;
}

/** `int32[...]` / `float32[...]` in an expression is a tensor type; any other `name[...]` indexes a list. */
function isDtype(t: IToken): boolean {
  return t.tokenType === T.Ident && (t.image === "int32" || t.image === "float32");
}

function bin(op: A.BinaryOp, left: A.Expr, right: A.Expr): A.Binary {
  return deep({ kind: "binary", op, left, right, span: joinSpans(left.span, right.span) }, right.span, [left, right]);
}

/**
 * Deepest expression tree accepted. Later phases (checker, code generator) walk expressions
 * recursively, and a long chain such as `1 + 1 + ... + 1` builds a deep tree without any brackets.
 */
export const MAX_EXPR_DEPTH = 200;
const exprDepth = new WeakMap<A.Expr, number>();

/** Record an expression's depth; refuse (SDC201, at `at`) one nested deeper than MAX_EXPR_DEPTH. */
function deep<E extends A.Expr>(e: E, at: Span, kids: A.Expr[]): E {
  let d = 0;
  for (const k of kids) d = Math.max(d, exprDepth.get(k) ?? 1);
  d += 1;
  if (d > MAX_EXPR_DEPTH) throw Object.assign(new Error(`expression nested too deeply: more than ${MAX_EXPR_DEPTH} levels of operators, calls or brackets`), { span: at, isMdl: true, code: "SDC201" });
  exprDepth.set(e, d);
  return e;
}

let parserInstance: MdlParser | undefined;

export interface ParseResult {
  ast?: A.SourceFile;
  diagnostics: Diagnostic[];
}

function describeToken(t: IToken): string {
  if (t.tokenType.name === "EOF") return "end of file";
  return `'${t.image}'`;
}

/** Parse tokens of one file. Never throws for bad input: errors come back as diagnostics. */
export function parseTokens(file: string, tokens: IToken[]): ParseResult {
  parserInstance ??= new MdlParser();
  const p = parserInstance;
  p.file = file;
  p.input = tokens;
  let ast: A.SourceFile | undefined;
  try {
    ast = p.sourceFile();
  } catch (e) {
    return { diagnostics: [thrownDiagnostic(e, p, file, tokens)] };
  }
  const diagnostics: Diagnostic[] = [];
  for (const e of p.errors) {
    const t = e.token;
    const span = t.tokenType.name === "EOF" && tokens.length ? T.tokenSpan(file, tokens[tokens.length - 1]) : T.tokenSpan(file, t);
    let msg = e.message;
    // Chevrotain's messages list every alternative; keep the first line, in our words.
    if (e.name === "MismatchedTokenException") {
      const m = /Expecting token of type --> (\w+) <--/.exec(msg);
      msg = `expected ${m ? tokenWord(m[1]) : "something else"} but found ${describeToken(t)}`;
    } else if (e.name === "NoViableAltException") {
      msg = `unexpected ${describeToken(t)}${ruleHint(e.context.ruleStack)}`;
    } else if (e.name === "NotAllInputParsedException") {
      msg = `unexpected ${describeToken(t)}: expected \`import\`, \`block\` or \`spec\` at the top level`;
    } else if (e.name === "EarlyExitException") {
      msg = `unexpected ${describeToken(t)}${ruleHint(e.context.ruleStack)}`;
    }
    diagnostics.push(diag("SDC200", span, msg));
  }
  return { ast: diagnostics.length ? undefined : ast, diagnostics };
}

function ruleHint(stack: string[]): string {
  const r = stack[stack.length - 1];
  const where: Record<string, string> = {
    primary: ": expected an expression",
    unary: ": expected an expression",
    stmt: ": expected a statement (`name = expr`, `for`, `if` or `return`)",
    specDecl: " in spec: expected `param`, `let`, `require`, `network:`, a section such as `train { ... }`, or `variant`",
    blockDecl: " in block: expected `let`, `require` or `forward`",
    sourceFile: ": expected `import`, `block` or `spec`",
    arg: ": expected an argument",
  };
  return where[r] ?? "";
}

function tokenWord(name: string): string {
  const words: Record<string, string> = {
    RCurly: "'}'", LCurly: "'{'", RParen: "')'", LParen: "'('", RBracket: "']'", LBracket: "'['", Ident: "a name", Colon: "':'",
    Eq: "'='", Arrow: "'->'", Comma: "','", StringLit: "a string", DotDot: "'..'", In: "'in'",
  };
  return words[name] ?? name;
}

/** The diagnostic for an exception out of a rule: our own errors, or the stack running out. Rethrows bugs. */
function thrownDiagnostic(e: unknown, p: MdlParser, file: string, tokens: IToken[]): Diagnostic {
  const err = e as { isMdl?: boolean; token?: IToken; span?: Span; message: string; code?: DiagnosticCode };
  if (err.isMdl) return diag(err.code ?? "SDC200", err.span ?? T.tokenSpan(file, err.token!), err.message);
  if (e instanceof RangeError) {
    // point at where the parser was when the stack ran out: inside the deep nesting
    const t = p.current();
    const at = t && t.tokenType.name !== "EOF" ? t : tokens[tokens.length - 1];
    return diag("SDC201", at ? T.tokenSpan(file, at) : { file, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } }, "nesting too deep for the parser");
  }
  throw e;
}

/** Parse a lone expression (for `--set name=value` on the command line). */
export function parseExpression(file: string, text: string): { expr?: A.Expr; diagnostics: Diagnostic[] } {
  const l = T.lex(file, text);
  if (l.diagnostics.length) return { diagnostics: l.diagnostics };
  parserInstance ??= new MdlParser();
  const p = parserInstance;
  p.file = file;
  p.input = l.tokens;
  let expr: A.Expr;
  try {
    expr = p.expr();
  } catch (e) {
    return { diagnostics: [thrownDiagnostic(e, p, file, l.tokens)] };
  }
  if (p.errors.length) {
    const t = p.errors[0].token;
    return { diagnostics: [diag("SDC200", T.tokenSpan(file, t.tokenType.name === "EOF" && l.tokens.length ? l.tokens[l.tokens.length - 1] : t), `bad value: unexpected ${describeToken(t)}`)] };
  }
  return { expr, diagnostics: [] };
}
