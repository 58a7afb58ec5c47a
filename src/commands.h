/*
 * commands.h — one function per `klaxon` command (private to the main
 * program). Each takes the arguments after the command name and returns the
 * process exit status.
 */
#ifndef KLAXON_COMMANDS_H
#define KLAXON_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_parse(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_silence(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_test(int argc, char **argv);

/* Resolve -c / $KLAXON_CONFIG / ./klaxon.yml / /etc/klaxon/klaxon.yml, or say
 * where it looked and return NULL. */
const char *find_config_or_explain(const char *explicit_path);

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_PROBLEMS = 1, EXIT_USAGE = 2 };

#endif
