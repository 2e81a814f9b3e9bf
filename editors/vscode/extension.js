// The VS Code client of `sdc lsp`: starts the server over stdio in the workspace folder (so
// paths read as `sdc compile` names them from the repository root) for .mdl documents.
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

/** The server command: the setting, else the workspace's bin/sdc.mjs, else `sdc` on PATH. */
function serverCommand(folder) {
  const configured = vscode.workspace.getConfiguration("sdc").get("server.command") || [];
  if (configured.length) return { command: configured[0], args: configured.slice(1) };
  const local = folder && join(folder, "bin", "sdc.mjs");
  if (local && existsSync(local)) return { command: process.execPath.endsWith("node") ? process.execPath : "node", args: [local, "lsp", "--stdio"] };
  return { command: "sdc", args: ["lsp", "--stdio"] };
}

function activate(context) {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const { command, args } = serverCommand(folder);
  const run = { command, args, transport: TransportKind.stdio, options: { cwd: folder } };
  client = new LanguageClient("sdc", "sdc language server", { run, debug: run }, {
    documentSelector: [{ scheme: "file", language: "mdl" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.mdl") },
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
