import type { Command } from 'commander';
import { configDocs, loadConfig, redactSecrets } from '../../config/index.ts';

/** `rankdistill config [--docs]`: prints the effective configuration, or the option reference. */
export function register(program: Command): void {
  program
    .command('config')
    .description(
      'print the effective configuration (file + environment; secrets as ***), or --docs for every option',
    )
    .option('--docs', 'print the option reference as a Markdown table')
    .action((opts: { docs?: boolean }, cmd: Command) => {
      if (opts.docs) {
        console.log(configDocs());
        return;
      }
      const file = cmd.optsWithGlobals<{ config?: string }>().config;
      // Secrets (passwords, tokens) print as ***: the output gets pasted into issues and chats.
      console.log(JSON.stringify(redactSecrets(loadConfig({ file })), null, 2));
    });
}
