"""The tools of the fake MCP server: a user directory lookup and a calculator.

Each tool's ``inputSchema`` and ``outputSchema`` are the JSON Schemas of pydantic models, and
its arguments and results are validated with those same models, so the schemas are real.
Bad arguments and impossible operations are tool execution errors (``isError: true``), as
the 2025-11-25 revision asks; an unknown tool is a protocol error (-32602).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from faker import Faker
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DIRECTORY_SIZE = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupInput(_Strict):
    user_id: int = Field(ge=1, description=f"The user's id, 1 to {DIRECTORY_SIZE}.")


class LookupOutput(_Strict):
    user_id: int
    found: bool
    name: str | None
    email: str | None
    city: str | None


class CalculatorInput(_Strict):
    a: float = Field(description="Left operand.")
    b: float = Field(description="Right operand.")
    op: Literal["add", "sub", "mul", "div"] = Field(description="The operation.")


class CalculatorOutput(_Strict):
    result: float
    expression: str


class ToolError(Exception):
    """The tool ran and failed: reported to the caller as a result with ``isError: true``."""


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    run: Callable[[Any], BaseModel]

    def definition(self) -> dict[str, Any]:
        """The entry of this tool in a ``tools/list`` result."""
        return {"name": self.name, "title": self.title, "description": self.description,
                "inputSchema": self.input_model.model_json_schema(),
                "outputSchema": self.output_model.model_json_schema()}

    def call(self, arguments: Any) -> dict[str, Any]:
        """A ``CallToolResult``: structured content plus the same JSON as text, or an error result."""
        try:
            output = self.run(self.input_model.model_validate(arguments or {}))
        except ValidationError as exc:
            return error_result(f"invalid arguments for {self.name}: {_short(exc)}")
        except ToolError as exc:
            return error_result(str(exc))
        structured = output.model_dump(mode="json")
        return {"content": [{"type": "text", "text": json.dumps(structured)}], "structuredContent": structured,
                "isError": False}


def error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())


def _calculate(args: CalculatorInput) -> CalculatorOutput:
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[args.op]
    if args.op == "div" and args.b == 0:
        raise ToolError(f"cannot divide {args.a:g} by zero")
    result = {"add": args.a + args.b, "sub": args.a - args.b, "mul": args.a * args.b,
              "div": args.a / args.b if args.b else 0.0}[args.op]
    return CalculatorOutput(result=result, expression=f"{args.a:g} {symbol} {args.b:g}")


def make_tools(seed: int) -> dict[str, Tool]:
    """The tools, with a user directory drawn from Faker with ``seed``."""
    faker = Faker()
    faker.seed_instance(seed)
    directory = {i: (faker.name(), faker.email(), faker.city()) for i in range(1, DIRECTORY_SIZE + 1)}

    def lookup(args: LookupInput) -> LookupOutput:
        entry = directory.get(args.user_id)
        if entry is None:
            return LookupOutput(user_id=args.user_id, found=False, name=None, email=None, city=None)
        name, email, city = entry
        return LookupOutput(user_id=args.user_id, found=True, name=name, email=email, city=city)

    tools = [
        Tool("lookup", "User directory lookup", f"Look up a user of the directory by id (1 to {DIRECTORY_SIZE}).",
             LookupInput, LookupOutput, lookup),
        Tool("calculator", "Calculator", "Add, subtract, multiply or divide two numbers.",
             CalculatorInput, CalculatorOutput, _calculate),
    ]
    return {tool.name: tool for tool in tools}


TOOL_NAMES = ("lookup", "calculator")
