// Stand-alone entry for save/restore (fault-injection tests spawn it; the CLI uses command.ts):
//   node dist/durability/main.js save --spool DIR --to DIR
//   node dist/durability/main.js restore --from DIR --spool DIR
import { runRestore, runSave } from './command.js';

const [cmd, ...rest] = process.argv.slice(2);
let code: number;
if (cmd === 'save') code = await runSave(rest);
else if (cmd === 'restore') code = await runRestore(rest);
else {
  process.stderr.write('usage: main.js save|restore ...\n');
  code = 2;
}
process.exitCode = code;
