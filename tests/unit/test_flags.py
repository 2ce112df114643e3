"""cli/flags.py, Docker's flag rules with argparse's interface.

The table below runs every command's real parser (through `dockyard.cli.main.main`, stopped at
its parse_args/parse_known_args) on argv cases. It was recorded from the argparse-based parsers
this module replaced; a case preceded by a "# argparse: ..." comment is one where argparse did not
behave as the docker CLI (spf13/pflag) does, and the new result follows Docker.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from dockyard.cli import args, runflags
from dockyard.cli.flags import REMAINDER, FlagParser, Namespace


class _Parsed(BaseException):
    pass


def parse(cmd: str, argv: list[str]) -> tuple:
    """`dockyard CMD ARGV` up to its parse: ("ok", vars, extras) or ("exit", code, stdout, stderr)."""
    from dockyard.cli import main

    depth = [0]
    orig_pa, orig_pk = args.Parser.parse_args, args.Parser.parse_known_args

    def pa(self, a=None, namespace=None):  # type: ignore[no-untyped-def]
        depth[0] += 1
        try:
            ns = orig_pa(self, a)
        finally:
            depth[0] -= 1
        raise _Parsed(vars(ns), None)

    def pk(self, a=None, namespace=None):  # type: ignore[no-untyped-def]
        if depth[0]:
            return orig_pk(self, a)
        ns, extras = orig_pk(self, a)
        raise _Parsed(vars(ns), extras)

    out, err = io.StringIO(), io.StringIO()
    args.Parser.parse_args, args.Parser.parse_known_args = pa, pk  # type: ignore[method-assign]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main.main([*cmd.split(), *argv])
            except SystemExit as e:
                code = e.code
            except _Parsed as p:
                return ("ok", p.args[0], p.args[1])
    finally:
        args.Parser.parse_args, args.Parser.parse_known_args = orig_pa, orig_pk  # type: ignore[method-assign]
    return ("exit", code, out.getvalue(), err.getvalue())


#: each command's values for the first valid case of its table; a case lists what differs
DEFAULTS = {'attach': {'container': 'c', 'detach_keys': None, 'no_stdin': False, 'sig_proxy': 'true'},
 'build': {'build_arg': [],
           'cache_from': [],
           'context': '.',
           'file': None,
           'force_rm': False,
           'iidfile': None,
           'label': [],
           'network': 'default',
           'no_cache': False,
           'platform': None,
           'progress': 'auto',
           'pull': False,
           'quiet': False,
           'rm': 'true',
           'secret': [],
           'ssh': [],
           'tag': [],
           'target': ''},
 'commit': {'author': '',
            'change': [],
            'container': 'c',
            'message': '',
            'no_pause': False,
            'pause': False,
            'reference': None},
 'container inspect': {'format': None, 'names': ['a'], 'size': False, 'type': 'container'},
 'container prune': {'filter': [], 'force': False},
 'cp': {'archive': False, 'destination': '/b', 'follow_link': False, 'quiet': False, 'source': 'c:/a'},
 'diff': {'container': 'c'},
 'exec': {'command': [],
          'container': 'c',
          'detach': False,
          'detach_keys': None,
          'env': [],
          'env_file': [],
          'interactive': False,
          'privileged': False,
          'tty': False,
          'user': '',
          'workdir': ''},
 'export': {'container': 'c', 'output': None},
 'history': {'format': None, 'human': 'true', 'image': 'img', 'no_trunc': False, 'quiet': False},
 'image inspect': {'format': None, 'images': ['a']},
 'image prune': {'all': False, 'filter': [], 'force': False},
 'images': {'all': False,
            'digests': False,
            'filter': [],
            'format': None,
            'no_trunc': False,
            'quiet': False,
            'repository': None},
 'import': {'change': [], 'message': '', 'platform': None, 'reference': None, 'source': 'f.tar'},
 'info': {'format': None},
 'inspect': {'format': None, 'names': ['a'], 'size': False, 'type': None},
 'kill': {'containers': ['a'], 'signal': 'HUP'},
 'load': {'input': None, 'platform': None, 'quiet': False},
 'login': {'password': None, 'password_stdin': False, 'server': None, 'username': None},
 'logout': {'server': None},
 'logs': {'container': 'c',
          'details': False,
          'follow': False,
          'since': None,
          'tail': 'all',
          'timestamps': False,
          'until': None},
 'manifest inspect': {'insecure': False, 'names': ['x'], 'verbose': False},
 'network connect': {'alias': [], 'container': 'c', 'ip': '', 'network': 'n'},
 'network create': {'attachable': False,
                    'driver': 'bridge',
                    'gateway': [],
                    'internal': False,
                    'ip_range': [],
                    'label': [],
                    'name': 'n',
                    'opt': [],
                    'subnet': []},
 'network disconnect': {'container': 'c', 'force': False, 'network': 'n'},
 'network inspect': {'format': None, 'names': ['n'], 'verbose': False},
 'network ls': {'filter': [], 'format': None, 'no_trunc': False, 'quiet': False},
 'network prune': {'filter': [], 'force': False},
 'network rm': {'force': False, 'names': ['n', 'm']},
 'pause': {'containers': ['a', 'b']},
 'port': {'container': 'c', 'port': None},
 'ps': {'all': False,
        'filter': [],
        'format': None,
        'last': -1,
        'latest': False,
        'no_trunc': False,
        'quiet': False,
        'size': False},
 'pull': {'all_tags': False, 'disable_content_trust': False, 'name': 'busybox', 'platform': None, 'quiet': False},
 'push': {'all_tags': False, 'compression': 'gzip', 'disable_content_trust': False, 'name': 'x', 'quiet': False},
 'rename': {'container': 'a', 'new_name': 'b'},
 'restart': {'containers': ['a'], 'signal': None, 'time': 5},
 'rm': {'containers': ['a'], 'force': True, 'link': False, 'volumes': False},
 'rmi': {'force': False, 'images': ['a'], 'no_prune': False},
 'run': {'add_host': [],
         'attach': [],
         'blkio_weight': None,
         'cap_add': [],
         'cap_drop': [],
         'command': [],
         'cpu_period': None,
         'cpu_quota': None,
         'cpu_shares': None,
         'cpus': None,
         'cpuset_cpus': None,
         'cpuset_mems': None,
         'detach': False,
         'detach_keys': None,
         'device': [],
         'dns': [],
         'dns_option': [],
         'dns_search': [],
         'entrypoint': None,
         'env': [],
         'env_file': [],
         'expose': [],
         'hostname': None,
         'image': 'busybox',
         'init': False,
         'interactive': False,
         'ip': '',
         'ipc': None,
         'kernel_memory': None,
         'label': [],
         'log_driver': 'json-file',
         'log_opt': [],
         'mac_address': '',
         'memory': None,
         'memory_reservation': None,
         'memory_swap': None,
         'mount': [],
         'name': None,
         'network': 'default',
         'network_alias': [],
         'oom_kill_disable': False,
         'pid': None,
         'pids_limit': None,
         'privileged': False,
         'publish': [],
         'publish_all': False,
         'pull': 'missing',
         'quiet': False,
         'read_only': False,
         'rm': False,
         'runtime': None,
         'security_opt': [],
         'shm_size': None,
         'sig_proxy': 'true',
         'stop_signal': None,
         'stop_timeout': None,
         'sysctl': [],
         'tmpfs': [],
         'tty': False,
         'ulimit': [],
         'user': None,
         'uts': None,
         'volume': [],
         'volume_driver': '',
         'volumes_from': [],
         'workdir': None},
 'save': {'images': ['a'], 'output': None, 'platform': None},
 'serve': {'debug': False,
           'group': 'dockyard',
           'host': [],
           'insecure_tcp': False,
           'tlscacert': None,
           'tlscert': None,
           'tlskey': None,
           'tlsverify': False},
 'start': {'attach': True, 'containers': ['a'], 'detach_keys': None, 'interactive': False},
 'stats': {'all': False, 'containers': [], 'format': None, 'no_stream': False, 'no_trunc': False},
 'stop': {'containers': ['a', 'b'], 'signal': None, 'time': 5},
 'system df': {'format': None, 'verbose': False},
 'tag': {'source': 'a', 'target': 'b'},
 'top': {'container': 'c', 'ps_args': []},
 'unpause': {'containers': ['a']},
 'version': {'format': None},
 'volume create': {'driver': 'local', 'label': [], 'name': None, 'name_arg': None, 'opt': []},
 'volume inspect': {'format': None, 'names': ['v']},
 'volume ls': {'filter': [], 'format': None, 'quiet': False},
 'volume prune': {'all': False, 'filter': [], 'force': False},
 'volume rm': {'force': False, 'names': ['v']},
 'wait': {'containers': ['a', 'b']}}

CASES = [
    # ---- run
    ('run', ['busybox'], ('ok', {})),
    ('run', ['--rm', '--network', 'none', 'busybox', 'true'],
     ('ok', {'command': ['true'], 'network': 'none', 'rm': True})),
    ('run', ['-it', 'busybox', 'sh'], ('ok', {'command': ['sh'], 'interactive': True, 'tty': True})),
    ('run', ['-dit', '--name', 'x', 'busybox'],
     ('ok', {'detach': True, 'interactive': True, 'name': 'x', 'tty': True})),
    ('run', ['-itp', '80:80', 'busybox'], ('ok', {'interactive': True, 'publish': ['80:80'], 'tty': True})),
    ('run', ['-p80:80', 'busybox'], ('ok', {'publish': ['80:80']})),
    ('run', ['-p=80:80', 'busybox'], ('ok', {'publish': ['80:80']})),
    ('run', ['--net=host', 'busybox'], ('ok', {'network': 'host'})),
    ('run', ['--net', 'host', 'busybox'], ('ok', {'network': 'host'})),
    ('run', ['-e', 'A=1', '-e', 'B=2', '--env=C=3', 'busybox', 'env'],
     ('ok', {'command': ['env'], 'env': ['A=1', 'B=2', 'C=3']})),
    ('run', ['busybox', 'ls', '-l', '--rm'], ('ok', {'command': ['ls', '-l', '--rm']})),
    # argparse: {'command': ['x']}
    ('run', ['busybox', '--', 'x'], ('ok', {'command': ['--', 'x']})),
    ('run', ['--', 'busybox', 'x'], ('ok', {'command': ['x']})),
    ('run', ['--rm', 'busybox', '-e', 'X'], ('ok', {'command': ['-e', 'X'], 'rm': True})),
    ('run', ['--stop-timeout', '5', 'busybox'], ('ok', {'stop_timeout': 5})),
    # argparse: ('err', "argument --stop-timeout: invalid int value: 'x'")
    ('run', ['--stop-timeout', 'x', 'busybox'],
     ('err', 'invalid argument "x" for "--stop-timeout" flag: strconv.ParseInt: parsing "x": invalid syntax')),
    ('run', ['--stop-timeout=5', 'busybox'], ('ok', {'stop_timeout': 5})),
    ('run', ['-c', '512', 'busybox'], ('ok', {'cpu_shares': 512})),
    ('run', ['-c512', 'busybox'], ('ok', {'cpu_shares': 512})),
    # argparse: ('err', 'argument --name: expected one argument')
    ('run', ['--name'], ('err', 'flag needs an argument: --name')),
    ('run', ['busybox', '--name'], ('ok', {'command': ['--name']})),
    ('run', [], ('err', '"dockyard run" requires at least 1 argument.')),
    ('run', ['--bogus', 'busybox'], ('err', 'unknown flag: --bogus')),
    ('run', ['-Z', 'busybox'], ('err', 'unknown flag: -Z')),
    # argparse: ('err', "argument --rm: ignored explicit argument 'true'")
    ('run', ['--rm=true', 'busybox'], ('ok', {'rm': True})),
    # argparse: ('err', "argument --rm: ignored explicit argument 'false'")
    ('run', ['--rm=false', 'busybox'], ('ok', {})),
    ('run', ['-h', 'myhost', 'busybox'], ('ok', {'hostname': 'myhost'})),
    ('run', ['-'], ('ok', {'image': '-'})),
    # argparse: ('err', 'argument --name: expected one argument')
    ('run', ['--name', '-x', 'busybox'], ('ok', {'name': '-x'})),
    ('run', ['-q', 'busybox'], ('ok', {'quiet': True})),
    ('run', ['--network-alias', 'a', '--net-alias', 'b', 'busybox'], ('ok', {'network_alias': ['a', 'b']})),
    ('run', ['--pull', 'never', 'busybox'], ('ok', {'pull': 'never'})),
    ('run', ['-v', '/a:/b', '--mount', 'type=tmpfs,dst=/t', 'busybox'],
     ('ok', {'mount': ['type=tmpfs,dst=/t'], 'volume': ['/a:/b']})),
    ('run', ['--help'], ('help',)),
    ('run', ['busybox', '--help'], ('ok', {'command': ['--help']})),
    ('run', ['--entrypoint', '', 'busybox'], ('ok', {'entrypoint': ''})),
    # argparse: ('err', 'argument -e/--env: expected one argument')
    ('run', ['-e'], ('err', "flag needs an argument: 'e' in -e")),
    ('run', ['--ip=', 'busybox'], ('ok', {})),
    ('run', ['-a', 'stdout', '-a', 'stderr', 'busybox'], ('ok', {'attach': ['stdout', 'stderr']})),
    ('run', ['-P', 'busybox'], ('ok', {'publish_all': True})),
    ('run', ['-dP', 'busybox'], ('ok', {'detach': True, 'publish_all': True})),
    ('run', ['-ite', 'FOO=1', 'busybox'], ('ok', {'env': ['FOO=1'], 'interactive': True, 'tty': True})),
    ('run', ['-ti', '--rm', 'busybox', 'sh', '-c', 'echo hi'],
     ('ok', {'command': ['sh', '-c', 'echo hi'], 'interactive': True, 'rm': True, 'tty': True})),
    ('run', ['--memory=10m', 'busybox'], ('ok', {'memory': '10m'})),
    # argparse: ('err', "argument -t/--tty: ignored explicit argument 'false'")
    ('run', ['--tty=false', 'busybox'], ('ok', {})),
    ('run', ['--cpu-shares=-1', 'busybox'], ('ok', {'cpu_shares': -1})),
    ('run', ['--pids-limit', '-1', 'busybox'], ('ok', {'pids_limit': -1})),
    ('run', ['--ne', 'none', 'busybox'], ('err', 'unknown flag: --ne')),
    # argparse: ('err', '"dockyard run" requires at least 1 argument.')
    ('run', ['-x'], ('err', 'unknown flag: -x')),
    ('run', ['--detach', '--interactive', 'busybox', 'a', 'b'],
     ('ok', {'command': ['a', 'b'], 'detach': True, 'interactive': True})),
    ('run', ['-itd', 'busybox'], ('ok', {'detach': True, 'interactive': True, 'tty': True})),
    ('run', ['-e=A=1', 'busybox'], ('ok', {'env': ['A=1']})),
    ('run', ['-eA=1', 'busybox'], ('ok', {'env': ['A=1']})),
    ('run', ['-w', '/tmp', '-u', '0:0', 'busybox'], ('ok', {'user': '0:0', 'workdir': '/tmp'})),
    ('run', ['busybox', '-'], ('ok', {'command': ['-']})),
    ('run', ['--rm', '--', '--x'], ('ok', {'image': '--x', 'rm': True})),
    # argparse: ('err', "argument --stop-timeout: invalid int value: ''")
    ('run', ['--stop-timeout', '', 'busybox'],
     ('err', 'invalid argument "" for "--stop-timeout" flag: strconv.ParseInt: parsing "": invalid syntax')),
    ('run', ['--rm', '-', 'x'], ('ok', {'command': ['x'], 'image': '-', 'rm': True})),
    ('run', ['-m', '4m', '--memory-swap=-1', 'busybox'], ('ok', {'memory': '4m', 'memory_swap': '-1'})),
    # ---- exec
    ('exec', ['c'], ('ok', {})),
    ('exec', ['c', 'ls', '-l'], ('ok', {'command': ['ls', '-l']})),
    ('exec', ['-it', 'c', 'sh'], ('ok', {'command': ['sh'], 'interactive': True, 'tty': True})),
    ('exec', ['c'], ('ok', {})),
    ('exec', [], ('err', '"dockyard exec" requires at least 1 argument.')),
    ('exec', ['-e', 'A=1', 'c', 'env'], ('ok', {'command': ['env'], 'env': ['A=1']})),
    # argparse: {'command': ['ls']}
    ('exec', ['c', '--', 'ls'], ('ok', {'command': ['--', 'ls']})),
    ('exec', ['-u', 'root', '-w', '/', 'c', 'id'], ('ok', {'command': ['id'], 'user': 'root', 'workdir': '/'})),
    ('exec', ['--bogus', 'c', 'ls'], ('err', 'unknown flag: --bogus')),
    ('exec', ['c', 'ls', '--bogus'], ('ok', {'command': ['ls', '--bogus']})),
    ('exec', ['-d', 'c', 'sleep', '1'], ('ok', {'command': ['sleep', '1'], 'detach': True})),
    ('exec', ['--help'], ('help',)),
    ('exec', ['-ite', 'A=1', 'c', 'sh'],
     ('ok', {'command': ['sh'], 'env': ['A=1'], 'interactive': True, 'tty': True})),
    ('exec', ['--user=1', 'c', 'id'], ('ok', {'command': ['id'], 'user': '1'})),
    ('exec', ['c', 'sh', '-c', 'echo $A'], ('ok', {'command': ['sh', '-c', 'echo $A']})),
    ('exec', ['--', 'c', 'ls'], ('ok', {'command': ['ls']})),
    # argparse: ('err', 'argument -u/--user: expected one argument')
    ('exec', ['-u'], ('err', "flag needs an argument: 'u' in -u")),
    # ---- stop
    ('stop', ['-t', '5', 'a', 'b'], ('ok', {})),
    ('stop', ['--time=5', 'a'], ('ok', {'containers': ['a']})),
    ('stop', ['--timeout', '3', 'a'], ('ok', {'containers': ['a'], 'time': 3})),
    # argparse: ('err', "argument -t/--time/--timeout: invalid int value: 'x'")
    ('stop', ['-t', 'x', 'a'],
     ('err', 'invalid argument "x" for "-t, --time" flag: strconv.ParseInt: parsing "x": invalid syntax')),
    ('stop', ['-t5', 'a'], ('ok', {'containers': ['a']})),
    ('stop', [], ('err', '"dockyard stop" requires at least 1 argument.')),
    ('stop', ['--help'], ('help',)),
    ('stop', ['-s', 'KILL', 'a'], ('ok', {'containers': ['a'], 'signal': 'KILL', 'time': None})),
    ('stop', ['a'], ('ok', {'containers': ['a'], 'time': None})),
    ('stop', ['--qa-bogus', 'x'], ('err', 'unknown flag: --qa-bogus')),
    # argparse: ('err', 'argument -t/--time/--timeout: expected one argument')
    ('stop', ['-t'], ('err', "flag needs an argument: 't' in -t")),
    ('stop', ['a', '-t', '1'], ('ok', {'containers': ['a'], 'time': 1})),
    # ---- restart
    ('restart', ['-t', '5', 'a'], ('ok', {})),
    ('restart', ['a', 'b'], ('ok', {'containers': ['a', 'b'], 'time': None})),
    ('restart', [], ('err', '"dockyard restart" requires at least 1 argument.')),
    ('restart', ['-t=2', 'a'], ('ok', {'time': 2})),
    # ---- kill
    ('kill', ['-s', 'HUP', 'a'], ('ok', {})),
    ('kill', ['--signal=HUP', 'a'], ('ok', {})),
    ('kill', ['a', 'b'], ('ok', {'containers': ['a', 'b'], 'signal': None})),
    ('kill', [], ('err', '"dockyard kill" requires at least 1 argument.')),
    ('kill', ['-sHUP', 'a'], ('ok', {})),
    # ---- rm
    ('rm', ['-f', 'a'], ('ok', {})),
    ('rm', ['-fv', 'a', 'b'], ('ok', {'containers': ['a', 'b'], 'volumes': True})),
    ('rm', ['-vf', 'a'], ('ok', {'volumes': True})),
    ('rm', ['-l', 'a'], ('ok', {'force': False, 'link': True})),
    ('rm', [], ('err', '"dockyard rm" requires at least 1 argument.')),
    ('rm', ['a', '-f'], ('ok', {})),
    # argparse: ('err', "argument -f/--force: ignored explicit argument 'true'")
    ('rm', ['--force=true', 'a'], ('ok', {})),
    # ---- start
    ('start', ['-a', 'a'], ('ok', {})),
    ('start', ['-ai', 'a'], ('ok', {'interactive': True})),
    ('start', ['--detach-keys', 'ctrl-x', 'a'], ('ok', {'attach': False, 'detach_keys': 'ctrl-x'})),
    ('start', [], ('err', '"dockyard start" requires at least 1 argument.')),
    ('start', ['a', 'b'], ('ok', {'attach': False, 'containers': ['a', 'b']})),
    # ---- wait
    ('wait', ['a', 'b'], ('ok', {})),
    ('wait', [], ('err', '"dockyard wait" requires at least 1 argument.')),
    ('wait', ['-x', 'a'], ('err', 'unknown flag: -x')),
    # ---- pause
    ('pause', ['a', 'b'], ('ok', {})),
    ('pause', [], ('err', '"dockyard pause" requires at least 1 argument.')),
    # ---- unpause
    ('unpause', ['a'], ('ok', {})),
    ('unpause', [], ('err', '"dockyard unpause" requires at least 1 argument.')),
    # ---- rename
    ('rename', ['a', 'b'], ('ok', {})),
    ('rename', ['a'], ('err', '"dockyard rename" requires at least 1 argument.')),
    ('rename', ['a', 'b', 'c'], ('err', 'unexpected argument: c')),
    ('rename', [], ('err', '"dockyard rename" requires at least 1 argument.')),
    # ---- container prune
    ('container prune', [], ('ok', {})),
    ('container prune', ['-f'], ('ok', {'force': True})),
    ('container prune', ['--filter', 'until=1h', '-f'], ('ok', {'filter': ['until=1h'], 'force': True})),
    ('container prune', ['x'], ('err', 'unexpected argument: x')),
    # ---- ps
    ('ps', [], ('ok', {})),
    ('ps', ['-a'], ('ok', {'all': True})),
    ('ps', ['-aq'], ('ok', {'all': True, 'quiet': True})),
    ('ps', ['-n', '3'], ('ok', {'last': 3})),
    ('ps', ['-n3'], ('ok', {'last': 3})),
    # argparse: ('err', "argument -n/--last: invalid int value: 'x'")
    ('ps', ['--last=x'],
     ('err', 'invalid argument "x" for "-n, --last" flag: strconv.ParseInt: parsing "x": invalid syntax')),
    ('ps', ['-f', 'status=exited', '--filter', 'name=x'], ('ok', {'filter': ['status=exited', 'name=x']})),
    ('ps', ['--format', '{{.ID}}'], ('ok', {'format': '{{.ID}}'})),
    ('ps', ['x'], ('err', 'unexpected argument: x')),
    ('ps', ['-s', '--no-trunc', '-l'], ('ok', {'latest': True, 'no_trunc': True, 'size': True})),
    ('ps', ['--qa-bogus'], ('err', 'unknown flag: --qa-bogus')),
    ('ps', ['-n', '-1'], ('ok', {})),
    ('ps', ['--help'], ('help',)),
    # argparse: ('err', 'unknown flag: -')
    ('ps', ['-a', '-'], ('err', 'unexpected argument: -')),
    # argparse: ('err', 'unknown flag: --')
    ('ps', ['--', '-a'], ('err', 'unexpected argument: -a')),
    # argparse: ('err', "argument -a/--all: ignored explicit argument '=true'")
    ('ps', ['-qa=true'], ('ok', {'all': True, 'quiet': True})),
    # ---- inspect
    ('inspect', ['a'], ('ok', {})),
    ('inspect', ['-f', '{{.Id}}', 'a', 'b'], ('ok', {'format': '{{.Id}}', 'names': ['a', 'b']})),
    ('inspect', ['--type', 'container', 'a'], ('ok', {'type': 'container'})),
    ('inspect', [], ('err', '"dockyard inspect" requires at least 1 argument.')),
    ('inspect', ['-s', 'a'], ('ok', {'size': True})),
    ('inspect', ['--format={{.Id}}', 'a'], ('ok', {'format': '{{.Id}}'})),
    # ---- container inspect
    ('container inspect', ['a'], ('ok', {})),
    ('container inspect', ['-s', 'a'], ('ok', {'size': True})),
    # ---- logs
    ('logs', ['c'], ('ok', {})),
    ('logs', ['-f', '-t', 'c'], ('ok', {'follow': True, 'timestamps': True})),
    ('logs', ['-n', '5', 'c'], ('ok', {'tail': '5'})),
    ('logs', ['--tail=5', 'c'], ('ok', {'tail': '5'})),
    ('logs', ['--since', '1m', '--until', 'now', 'c'], ('ok', {'since': '1m', 'until': 'now'})),
    ('logs', [], ('err', '"dockyard logs" requires at least 1 argument.')),
    ('logs', ['a', 'b'], ('err', 'unexpected argument: b')),
    ('logs', ['-ft', 'c'], ('ok', {'follow': True, 'timestamps': True})),
    ('logs', ['c', '-f'], ('ok', {'follow': True})),
    ('logs', ['--details', 'c'], ('ok', {'details': True})),
    # ---- top
    ('top', ['c'], ('ok', {}, [])),
    ('top', ['c', '-ef'], ('ok', {}, ['-ef'])),
    ('top', ['c', 'aux'], ('ok', {'ps_args': ['aux']}, [])),
    ('top', ['c', '-o', 'pid'], ('ok', {}, ['-o', 'pid'])),
    ('top', ['c', 'aux', '-o', 'pid'], ('ok', {'ps_args': ['aux']}, ['-o', 'pid'])),
    ('top', ['c', '-o', 'pid', 'aux'], ('ok', {}, ['-o', 'pid', 'aux'])),
    ('top', [], ('err', '"dockyard top" requires at least 1 argument.')),
    ('top', ['c', '--help'], ('help',)),
    ('top', ['c', 'a', 'b'], ('ok', {'ps_args': ['a', 'b']}, [])),
    # ---- stats
    ('stats', [], ('ok', {})),
    ('stats', ['--no-stream'], ('ok', {'no_stream': True})),
    ('stats', ['-a', '--no-stream', 'a', 'b'], ('ok', {'all': True, 'containers': ['a', 'b'], 'no_stream': True})),
    ('stats', ['--format', 'x'], ('ok', {'format': 'x'})),
    # ---- attach
    ('attach', ['c'], ('ok', {})),
    ('attach', ['--no-stdin', 'c'], ('ok', {'no_stdin': True})),
    ('attach', ['--sig-proxy=false', 'c'], ('ok', {'sig_proxy': 'false'})),
    ('attach', ['--detach-keys', 'ctrl-a', 'c'], ('ok', {'detach_keys': 'ctrl-a'})),
    ('attach', [], ('err', '"dockyard attach" requires at least 1 argument.')),
    ('attach', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- cp
    ('cp', ['c:/a', '/b'], ('ok', {})),
    ('cp', ['-a', 'c:/a', '-'], ('ok', {'archive': True, 'destination': '-'})),
    ('cp', ['-L', '-q', 'c:/a', '/b'], ('ok', {'follow_link': True, 'quiet': True})),
    ('cp', ['c:/a'], ('err', '"dockyard cp" requires at least 1 argument.')),
    ('cp', [], ('err', '"dockyard cp" requires at least 1 argument.')),
    ('cp', ['a', 'b', 'c'], ('err', 'unexpected argument: c')),
    ('cp', ['-aL', 'a', 'b'], ('ok', {'archive': True, 'destination': 'b', 'follow_link': True, 'source': 'a'})),
    # ---- diff
    ('diff', ['c'], ('ok', {})),
    ('diff', [], ('err', '"dockyard diff" requires at least 1 argument.')),
    ('diff', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- export
    ('export', ['c'], ('ok', {})),
    ('export', ['-o', 'f.tar', 'c'], ('ok', {'output': 'f.tar'})),
    ('export', ['--output=f.tar', 'c'], ('ok', {'output': 'f.tar'})),
    # argparse: ('err', 'argument -o/--output: expected one argument')
    ('export', ['-o'], ('err', "flag needs an argument: 'o' in -o")),
    # ---- commit
    ('commit', ['c'], ('ok', {})),
    ('commit', ['c', 'img:tag'], ('ok', {'reference': 'img:tag'})),
    ('commit', ['-a', 'me', '-m', 'msg', '-c', 'ENV A=1', '-c', 'CMD x', 'c', 'img'],
     ('ok', {'author': 'me', 'change': ['ENV A=1', 'CMD x'], 'message': 'msg', 'reference': 'img'})),
    ('commit', ['-p', 'c'], ('ok', {})),
    ('commit', ['--no-pause', 'c'], ('ok', {})),
    ('commit', ['c', 'a', 'b'], ('err', 'unexpected argument: b')),
    ('commit', [], ('err', '"dockyard commit" requires at least 1 argument.')),
    # ---- import
    ('import', ['f.tar'], ('ok', {})),
    ('import', ['f.tar', 'img:t'], ('ok', {'reference': 'img:t'})),
    ('import', ['-c', 'ENV A=1', '-m', 'm', '-', 'img'],
     ('ok', {'change': ['ENV A=1'], 'message': 'm', 'reference': 'img', 'source': '-'})),
    ('import', ['--platform', 'linux/amd64', 'f'], ('ok', {'platform': 'linux/amd64', 'source': 'f'})),
    ('import', [], ('err', '"dockyard import" requires at least 1 argument.')),
    ('import', ['a', 'b', 'c'], ('err', 'unexpected argument: c')),
    # ---- images
    ('images', [], ('ok', {})),
    ('images', ['-a'], ('ok', {'all': True})),
    ('images', ['-q', '--no-trunc'], ('ok', {'no_trunc': True, 'quiet': True})),
    ('images', ['busybox'], ('ok', {'repository': 'busybox'})),
    ('images', ['--digests', '--format', 'x'], ('ok', {'digests': True, 'format': 'x'})),
    ('images', ['-f', 'dangling=true'], ('ok', {'filter': ['dangling=true']})),
    ('images', ['a', 'b'], ('err', 'unexpected argument: b')),
    ('images', ['--qa-bogus'], ('err', 'unknown flag: --qa-bogus')),
    # ---- tag
    ('tag', ['a', 'b'], ('ok', {})),
    ('tag', ['a'], ('err', '"dockyard tag" requires at least 1 argument.')),
    ('tag', ['a', 'b', 'c'], ('err', 'unexpected argument: c')),
    ('tag', [], ('err', '"dockyard tag" requires at least 1 argument.')),
    # ---- rmi
    ('rmi', ['a'], ('ok', {})),
    ('rmi', ['-f', 'a', 'b'], ('ok', {'force': True, 'images': ['a', 'b']})),
    ('rmi', ['--no-prune', 'a'], ('ok', {'no_prune': True})),
    ('rmi', [], ('err', '"dockyard rmi" requires at least 1 argument.')),
    # ---- image inspect
    ('image inspect', ['a'], ('ok', {})),
    ('image inspect', ['-f', 'x', 'a'], ('ok', {'format': 'x'})),
    ('image inspect', [], ('err', '"dockyard image inspect" requires at least 1 argument.')),
    # ---- build
    ('build', ['.'], ('ok', {})),
    ('build', ['-t', 'a', '-t', 'b', '.'], ('ok', {'tag': ['a', 'b']})),
    ('build', ['-f', 'Dockerfile.x', '.'], ('ok', {'file': 'Dockerfile.x'})),
    ('build', ['--cache-from', 'a:1', '--cache-from=b', '.'], ('ok', {'cache_from': ['a:1', 'b']})),
    ('build', ['--build-arg', 'A=1', '--no-cache', '.'], ('ok', {'build_arg': ['A=1'], 'no_cache': True})),
    # argparse: ('err', '"dockyard build" requires at least 1 argument.')
    ('build', ['--rm', '.'], ('ok', {})),
    ('build', ['--rm=false', '.'], ('ok', {'rm': 'false'})),
    # argparse: {'rm': 'false'}
    ('build', ['--rm', 'false', '.'], ('err', 'unexpected argument: .')),
    ('build', ['--target', 's', '-q', '.'], ('ok', {'quiet': True, 'target': 's'})),
    ('build', ['--progress=plain', '.'], ('ok', {'progress': 'plain'})),
    ('build', ['--secret', 'id=x,src=y', '.'], ('ok', {'secret': ['id=x,src=y']})),
    ('build', ['--network', 'host', '.'], ('ok', {'network': 'host'})),
    ('build', ['--pull', '--force-rm', '.'], ('ok', {'force_rm': True, 'pull': True})),
    ('build', ['--iidfile', 'f', '.'], ('ok', {'iidfile': 'f'})),
    ('build', [], ('err', '"dockyard build" requires at least 1 argument.')),
    ('build', ['a', 'b'], ('err', 'unexpected argument: b')),
    ('build', ['-'], ('ok', {'context': '-'})),
    ('build', ['.', '--rm'], ('ok', {})),
    ('build', ['--help'], ('help',)),
    ('build', ['-qt', 'x', '.'], ('ok', {'quiet': True, 'tag': ['x']})),
    ('build', ['--rm=true', '.'], ('ok', {})),
    # ---- history
    ('history', ['img'], ('ok', {})),
    ('history', ['-H', 'img'], ('ok', {})),
    ('history', ['-H=false', 'img'], ('ok', {'human': 'false'})),
    ('history', ['--human=false', 'img'], ('ok', {'human': 'false'})),
    ('history', ['--human', 'img'], ('ok', {})),
    ('history', ['-q', '--no-trunc', 'img'], ('ok', {'no_trunc': True, 'quiet': True})),
    ('history', ['--format', 'x', 'img'], ('ok', {'format': 'x'})),
    ('history', ['-H=x', 'img'], ('ok', {'human': 'x'})),
    ('history', [], ('err', '"dockyard history" requires at least 1 argument.')),
    # ---- save
    ('save', ['a'], ('ok', {})),
    ('save', ['-o', 'f', 'a', 'b'], ('ok', {'images': ['a', 'b'], 'output': 'f'})),
    ('save', ['--platform', 'p', 'a'], ('ok', {'platform': 'p'})),
    ('save', [], ('err', '"dockyard save" requires at least 1 argument.')),
    # ---- load
    ('load', [], ('ok', {})),
    ('load', ['-i', 'f'], ('ok', {'input': 'f'})),
    ('load', ['-q', '--input=f'], ('ok', {'input': 'f', 'quiet': True})),
    ('load', ['x'], ('err', 'unexpected argument: x')),
    # ---- image prune
    ('image prune', [], ('ok', {})),
    ('image prune', ['-a', '-f'], ('ok', {'all': True, 'force': True})),
    ('image prune', ['--filter', 'until=1h'], ('ok', {'filter': ['until=1h']})),
    ('image prune', ['-af'], ('ok', {'all': True, 'force': True})),
    # ---- system df
    ('system df', [], ('ok', {})),
    ('system df', ['-v'], ('ok', {'verbose': True})),
    ('system df', ['--format', 'x'], ('ok', {'format': 'x'})),
    # ---- network create
    ('network create', ['n'], ('ok', {})),
    ('network create', ['-d', 'bridge', '--subnet', '10.0.0.0/24', '--gateway', '10.0.0.1', 'n'],
     ('ok', {'gateway': ['10.0.0.1'], 'subnet': ['10.0.0.0/24']})),
    ('network create', ['--internal', '--attachable', '--label', 'a=b', '-o', 'x=y', 'n'],
     ('ok', {'attachable': True, 'internal': True, 'label': ['a=b'], 'opt': ['x=y']})),
    ('network create', [], ('err', '"dockyard network create" requires at least 1 argument.')),
    ('network create', ['a', 'b'], ('err', 'unexpected argument: b')),
    ('network create', ['--ip-range', 'x', 'n'], ('ok', {'ip_range': ['x']})),
    # ---- network ls
    ('network ls', [], ('ok', {})),
    ('network ls', ['-q'], ('ok', {'quiet': True})),
    ('network ls', ['-f', 'driver=bridge', '--format', 'x', '--no-trunc'],
     ('ok', {'filter': ['driver=bridge'], 'format': 'x', 'no_trunc': True})),
    # ---- network inspect
    ('network inspect', ['n'], ('ok', {})),
    ('network inspect', ['-f', 'x', '-v', 'a', 'b'], ('ok', {'format': 'x', 'names': ['a', 'b'], 'verbose': True})),
    ('network inspect', [], ('err', '"dockyard network inspect" requires at least 1 argument.')),
    # ---- network rm
    ('network rm', ['n', 'm'], ('ok', {})),
    ('network rm', ['-f', 'n'], ('ok', {'force': True, 'names': ['n']})),
    ('network rm', [], ('err', '"dockyard network rm" requires at least 1 argument.')),
    # ---- network prune
    ('network prune', [], ('ok', {})),
    ('network prune', ['-f', '--filter', 'label=x'], ('ok', {'filter': ['label=x'], 'force': True})),
    # ---- network connect
    ('network connect', ['n', 'c'], ('ok', {})),
    ('network connect', ['--ip', '1.2.3.4', '--alias', 'a', '--alias', 'b', 'n', 'c'],
     ('ok', {'alias': ['a', 'b'], 'ip': '1.2.3.4'})),
    ('network connect', ['n'], ('err', '"dockyard network connect" requires at least 1 argument.')),
    ('network connect', [], ('err', '"dockyard network connect" requires at least 1 argument.')),
    # ---- network disconnect
    ('network disconnect', ['n', 'c'], ('ok', {})),
    ('network disconnect', ['-f', 'n', 'c'], ('ok', {'force': True})),
    ('network disconnect', ['n'], ('err', '"dockyard network disconnect" requires at least 1 argument.')),
    # ---- port
    ('port', ['c'], ('ok', {})),
    ('port', ['c', '80/tcp'], ('ok', {'port': '80/tcp'})),
    ('port', [], ('err', '"dockyard port" requires at least 1 argument.')),
    ('port', ['c', '80', 'x'], ('err', 'unexpected argument: x')),
    # ---- info
    ('info', [], ('ok', {})),
    ('info', ['-f', 'x'], ('ok', {'format': 'x'})),
    ('info', ['x'], ('err', 'unexpected argument: x')),
    # ---- version
    ('version', [], ('ok', {})),
    ('version', ['--format', 'x'], ('ok', {'format': 'x'})),
    # ---- pull
    ('pull', ['busybox'], ('ok', {})),
    ('pull', ['-a', '-q', '--platform', 'linux/amd64', 'busybox'],
     ('ok', {'all_tags': True, 'platform': 'linux/amd64', 'quiet': True})),
    ('pull', ['--disable-content-trust', 'busybox'], ('ok', {'disable_content_trust': True})),
    ('pull', [], ('err', '"dockyard pull" requires at least 1 argument.')),
    ('pull', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- push
    ('push', ['x'], ('ok', {})),
    ('push', ['--compression', 'zstd', 'x'], ('ok', {'compression': 'zstd'})),
    # argparse: ('err', "argument --compression: invalid choice: 'xz' (choose from 'gzip', 'zstd')")
    ('push', ['--compression', 'xz', 'x'],
     ('err', 'invalid argument "xz" for "--compression" flag: must be one of "gzip", "zstd"')),
    ('push', ['--compression=gzip', '-a', '-q', 'x'], ('ok', {'all_tags': True, 'quiet': True})),
    # ---- login
    ('login', [], ('ok', {})),
    ('login', ['reg'], ('ok', {'server': 'reg'})),
    ('login', ['-u', 'u', '-p', 'p', 'reg'], ('ok', {'password': 'p', 'server': 'reg', 'username': 'u'})),
    ('login', ['--password-stdin', '-u', 'u'], ('ok', {'password_stdin': True, 'username': 'u'})),
    ('login', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- logout
    ('logout', [], ('ok', {})),
    ('logout', ['reg'], ('ok', {'server': 'reg'})),
    ('logout', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- manifest inspect
    ('manifest inspect', ['x'], ('ok', {})),
    ('manifest inspect', ['--insecure', '-v', 'a', 'b'],
     ('ok', {'insecure': True, 'names': ['a', 'b'], 'verbose': True})),
    ('manifest inspect', [], ('err', '"dockyard manifest inspect" requires at least 1 argument.')),
    # ---- volume create
    ('volume create', [], ('ok', {})),
    ('volume create', ['v'], ('ok', {'name_arg': 'v'})),
    ('volume create', ['--name', 'v'], ('ok', {'name': 'v'})),
    ('volume create', ['-d', 'local', '-o', 'type=tmpfs', '--label', 'a=b', 'v'],
     ('ok', {'label': ['a=b'], 'name_arg': 'v', 'opt': ['type=tmpfs']})),
    ('volume create', ['a', 'b'], ('err', 'unexpected argument: b')),
    # ---- volume ls
    ('volume ls', [], ('ok', {})),
    ('volume ls', ['-q'], ('ok', {'quiet': True})),
    ('volume ls', ['-f', 'dangling=true', '--format', 'x'], ('ok', {'filter': ['dangling=true'], 'format': 'x'})),
    # ---- volume inspect
    ('volume inspect', ['v'], ('ok', {})),
    ('volume inspect', ['-f', 'x', 'a', 'b'], ('ok', {'format': 'x', 'names': ['a', 'b']})),
    ('volume inspect', [], ('err', '"dockyard volume inspect" requires at least 1 argument.')),
    # ---- volume rm
    ('volume rm', ['v'], ('ok', {})),
    ('volume rm', ['-f', 'a', 'b'], ('ok', {'force': True, 'names': ['a', 'b']})),
    ('volume rm', [], ('err', '"dockyard volume rm" requires at least 1 argument.')),
    # ---- volume prune
    ('volume prune', [], ('ok', {})),
    ('volume prune', ['-a', '-f'], ('ok', {'all': True, 'force': True})),
    ('volume prune', ['--filter', 'label=x'], ('ok', {'filter': ['label=x']})),
    # ---- serve
    ('serve', [], ('ok', {})),
    ('serve', ['-H', 'unix:///x', '-H', 'tcp://0:1'], ('ok', {'host': ['unix:///x', 'tcp://0:1']})),
    ('serve', ['--group', 'g', '-G', 'h'], ('ok', {'group': 'h'})),
    ('serve', ['-D'], ('ok', {'debug': True})),
    ('serve', ['--debug', '--tlsverify', '--tlscacert', 'a', '--tlscert', 'b', '--tlskey', 'c'],
     ('ok', {'debug': True, 'tlscacert': 'a', 'tlscert': 'b', 'tlskey': 'c', 'tlsverify': True})),
    ('serve', ['--insecure-tcp'], ('ok', {'insecure_tcp': True})),
    ('serve', ['x'], ('err', 'unexpected argument: x')),
]


@pytest.mark.parametrize("cmd,argv,want", CASES, ids=[f"{c}:{' '.join(a)}" for c, a, _ in CASES])
def test_command_parsers(cmd: str, argv: list[str], want: tuple) -> None:
    got = parse(cmd, argv)
    if want[0] == "ok":
        assert got[0] == "ok", got
        assert got[1] == {**DEFAULTS[cmd], **want[1]}
        assert got[2] == (want[2] if len(want) > 2 else None)
    elif want[0] == "err":
        assert got[:2] == ("exit", 125), got
        assert got[3] == f"{want[1]}\nSee 'dockyard {cmd} --help'.\n"
        assert got[2] == ""
    else:
        assert got[:2] == ("exit", 0), got
        assert got[2].startswith("Usage:  dockyard "), got[2]


# ---- the parser on its own ---------------------------------------------------------------


def _parser() -> FlagParser:
    p = FlagParser("dockyard x", usage="dockyard x [OPTIONS] IMAGE [COMMAND] [ARG...]", description="Do x")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], help="Set environment variables")
    p.add_argument("--network", "--net", dest="network", default="default", help="Connect to a network")
    p.add_argument("-c", "--cpu-shares", type=int, help="CPU shares")
    p.add_argument("--rm", default="true", nargs="?", const="true", help="Remove")
    p.add_argument("--mode", choices=("a", "b"), metavar="MODE", help="The mode")
    p.add_argument("image")
    p.add_argument("command", nargs=REMAINDER)
    return p


def test_short_groups_and_values() -> None:
    p = _parser()
    ns = p.parse_args(["-ite", "A=1", "-eB=2", "-e=C=3", "img"])
    assert (ns.interactive, ns.tty, ns.env) == (True, True, ["A=1", "B=2", "C=3"])
    assert p.parse_args(["-tc5", "img"]).cpu_shares == 5
    assert p.parse_args(["-i=false", "-t=1", "img"]).interactive is False


def test_append_default_is_not_shared() -> None:
    p = _parser()
    assert p.parse_args(["-e", "A=1", "img"]).env == ["A=1"]
    assert p.parse_args(["img"]).env == []
    assert p.parse_args(["-e", "B", "img"]).env == ["B"]


def test_value_flag_takes_next_argument_whatever_it_is() -> None:
    ns = _parser().parse_args(["--network", "--rm", "-c", "-1", "img"])
    assert (ns.network, ns.cpu_shares, ns.rm) == ("--rm", -1, "true")


def test_remainder_keeps_flags_and_double_dash() -> None:
    p = _parser()
    assert p.parse_args(["-i", "img", "-t", "--", "x"]).command == ["-t", "--", "x"]
    assert p.parse_args(["-i", "--", "-img", "-t"]) == Namespace(
        interactive=True, tty=False, env=[], network="default", cpu_shares=None, rm="true", mode=None,
        image="-img", command=["-t"])
    assert p.parse_args(["-", "x"]).image == "-"


@pytest.mark.parametrize("argv,message", [
    (["--tty=maybe", "img"], 'invalid argument "maybe" for "-t, --tty" flag: strconv.ParseBool: parsing "maybe": '
                             "invalid syntax"),
    (["-c", "1_0", "img"], 'invalid argument "1_0" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing "1_0": '
                           "invalid syntax"),
    (["-c", " 1", "img"], 'invalid argument " 1" for "-c, --cpu-shares" flag: strconv.ParseInt: parsing " 1": '
                          "invalid syntax"),
    (["-c", str(1 << 63), "img"], f'invalid argument "{1 << 63}" for "-c, --cpu-shares" flag: strconv.ParseInt: '
                                  f'parsing "{1 << 63}": value out of range'),
    (["--mode", "c", "img"], 'invalid argument "c" for "--mode" flag: must be one of "a", "b"'),
    (["-it", "-Z"], "unknown flag: -Z"),
    (["-iZ", "img"], "unknown flag: -Z"),
    (["--netw", "x", "img"], "unknown flag: --netw"),
    (["--bogus=1", "img"], "unknown flag: --bogus"),
    (["-ie"], "flag needs an argument: 'e' in -ie"),
    (["--env"], "flag needs an argument: --env"),
    ([], '"dockyard x" requires at least 1 argument.'),
])
def test_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 125
    assert capsys.readouterr().err == f"{message}\nSee 'dockyard x --help'.\n"


def test_interspersed_positionals_without_remainder() -> None:
    p = FlagParser("dockyard rm")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("containers", nargs="+")
    assert vars(p.parse_args(["a", "-f", "b"])) == {"force": True, "containers": ["a", "b"]}
    q = FlagParser("dockyard cp")
    q.add_argument("source")
    q.add_argument("reference", nargs="?")
    q.add_argument("rest", nargs="*")
    q.add_argument("last")
    assert vars(q.parse_args(["a", "z"])) == {"source": "a", "reference": None, "rest": [], "last": "z"}
    assert vars(q.parse_args(["a", "b", "c", "d", "z"])) == {"source": "a", "reference": "b", "rest": ["c", "d"],
                                                             "last": "z"}


def test_parse_known_args_leaves_an_unknown_flag_and_the_rest() -> None:
    p = FlagParser("dockyard top")
    p.add_argument("container")
    p.add_argument("ps_args", nargs="*")
    ns, extra = p.parse_known_args(["c", "aux", "-o", "pid", "x"])
    assert (ns.container, ns.ps_args, extra) == ("c", ["aux"], ["-o", "pid", "x"])


def test_help_lists_flags_as_docker_does(capsys: pytest.CaptureFixture[str]) -> None:
    p = _parser()
    p.add_argument("--help", action="help", help="Print usage")
    with pytest.raises(SystemExit) as e:
        p.parse_args(["-i", "--help", "img"])
    assert e.value.code == 0
    assert capsys.readouterr().out == """Usage:  dockyard x [OPTIONS] IMAGE [COMMAND] [ARG...]

Do x

Options:
  -c, --cpu-shares int   CPU shares
  -e, --env list         Set environment variables
      --help             Print usage
  -i, --interactive      Keep STDIN open
      --mode MODE        The mode
      --network string   Connect to a network (default "default")
      --rm               Remove
  -t, --tty              Allocate a pseudo-TTY
"""


def test_run_help_and_usage() -> None:
    text = runflags.parser("run").format_help()
    assert text.startswith("Usage:  dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                           "Create and run a new container from an image\n\nOptions:\n")
    assert "\n  -p, --publish list " in text and "\n      --rm " in text and "--net " not in text


def test_declaration_errors() -> None:
    p = FlagParser("x")
    p.add_argument("-a", "--all", action="store_true")
    for names, kw in [(("--all",), {}), (("-a",), {}), (("--x",), {"action": "count"}),
                      (("--y",), {"nargs": "+"}), (("pos", "other"), {})]:
        with pytest.raises(ValueError):
            p.add_argument(*names, **kw)


def _new_modules(setup: str, code: str) -> list[str]:
    """Modules that `code` imports in a fresh interpreter after `setup` ran."""
    script = f"import sys\n{setup}\nbefore = set(sys.modules)\n{code}\nprint(' '.join(set(sys.modules) - before))"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()


_SLOW = ("argparse", "gettext", "locale", "shutil", "re", "typing", "bz2", "lzma", "zlib", "enum")


def test_parser_imports_nothing_slow() -> None:
    new = _new_modules("", "from dockyard.cli.args import Parser\np = Parser('x')\n"
                           "p.add_argument('-a', '--all', action='store_true')\np.add_argument('names', nargs='*')\n"
                           "p.parse_args(['-a', 'n'])")
    assert not set(new) & set(_SLOW), new


def test_run_parser_imports_nothing_slow() -> None:
    """Building run's parser and parsing: no argparse and its imports. (runflags' other imports,
    shlex and dockyard._util, bring in re: they are imported first here.)"""
    new = _new_modules("import shlex\nimport dockyard._util, dockyard.errors",
                       "from dockyard.cli import runflags\n"
                       "runflags.parser('run').parse_args(['--rm', '--network', 'none', 'busybox', 'true'])")
    assert not set(new) & set(_SLOW), new
