%% Orrery's hot-swap runtime on the target node: compiled from this source at attach with
%% the agent, removed at detach. Keep this file ASCII only (it is sent to the node as a
%% charlist) and free of macros and includes (no epp on the way).
-module(orrery_swap_v1).
-export([swap/3, swap_finish/2, needed/3, protocol/1]).
%% ---- hot swap ----------------------------------------------------------------------
%% Load Bin as Mod the safe way: refuse while a process still runs old code; suspend the
%% OTP processes whose callback module is Mod, back up their states, load, run
%% sys:change_code when the version changed, resume. On any failure load the previous
%% binary back, restore the states, resume, and say what failed. Never leaves a process
%% suspended. Returns {ok, Info} | {error, Reason}; Info carries the previous binary.
%%
%% With Opts hold => Ms (two-phase, for all-or-none swaps across modules and nodes): the
%% new code is loaded and the states migrated, but the processes stay suspended until
%% swap_finish(Token, commit | abort) (abort: previous code and backed-up states back) or
%% until Ms pass or Orrery's node (Opts owner) goes down (then abort). Info then carries
%% token => Token. No process runs the new code before Orrery has heard that every node
%% accepted it.
swap(Mod, Bin, Opts) ->
    case maps:get(hold, Opts, nil) of
        Hold when is_integer(Hold), Hold > 0 ->
            Caller = self(),
            Ref = make_ref(),
            {Pid, MRef} = spawn_monitor(fun() -> held(Caller, Ref, Mod, Bin, Opts, Hold) end),
            receive
                {Ref, Reply} -> erlang:demonitor(MRef, [flush]), Reply;
                {'DOWN', MRef, process, Pid, Why} -> {error, {swap_crashed, Why}}
            end;
        _ ->
            case prepare_swap(Mod, Bin, Opts) of
                {ok, Info, Undo} -> finish_swap(commit, Undo), {ok, Info};
                Error -> Error
            end
    end.

%% Whether a save has to load Bin as Mod: true; false when it is the code already running
%% (or, for a dependent recompiled along and not loaded, at all); on_disk for a module
%% nobody loaded yet whose build on disk is the same code: the code server loads it when
%% it is first used.
needed(Mod, Bin, Dependent) ->
    New = case beam_lib:md5(Bin) of {ok, {_, M}} -> M; _ -> nil end,
    case code:is_loaded(Mod) of
        {file, _} -> erlang:get_module_info(Mod, md5) =/= New;
        false when Dependent -> false;
        false ->
            case code:which(Mod) of
                F when is_list(F) ->
                    case beam_lib:md5(F) of {ok, {_, New}} -> on_disk; _ -> true end;
                _ -> true
            end
    end.

%% How the node dispatches through protocol P, for a save that recompiles it or an impl
%% of it: consolidated => whether it runs (or, not loaded yet, would load) a consolidated
%% P; impls => the types a loaded consolidated P dispatches to; md5 => the loaded code's
%% (nil when not loaded); disk => its beam from the code path when that is the code it
%% runs or would load (nil otherwise). Mix writes consolidated protocols to a directory
%% named consolidated, ahead of the ebin directories in the code path.
protocol(P) ->
    case code:is_loaded(P) of
        {file, _} ->
            Md5 = erlang:get_module_info(P, md5),
            Exported = erlang:function_exported(P, '__protocol__', 1),
            Impls = case Exported of
                        true -> try P:'__protocol__'(impls) catch _:_ -> error end;
                        false -> false
                    end,
            case Impls of
                {consolidated, Types} when is_list(Types) ->
                    #{consolidated => true, impls => Types, md5 => Md5,
                      disk => disk_binary(P, Md5)};
                _ ->
                    #{consolidated => false, impls => [], md5 => Md5, disk => nil}
            end;
        false ->
            case code:get_object_code(P) of
                {P, Bin, File} ->
                    Dir = filename:basename(filename:dirname(File)),
                    #{consolidated => Dir =:= "consolidated", impls => [], md5 => nil,
                      disk => Bin};
                error ->
                    #{consolidated => false, impls => [], md5 => nil, disk => nil}
            end
    end.

%% Commit or abort a held swap. ok | {error, Reason}; {error, expired} when the hold had
%% already ended (it aborted by itself).
swap_finish(Token, What) when is_pid(Token), (What =:= commit orelse What =:= abort) ->
    MRef = erlang:monitor(process, Token),
    Token ! {swap_finish, self(), MRef, What},
    receive
        {MRef, Reply} -> erlang:demonitor(MRef, [flush]), Reply;
        {'DOWN', MRef, process, _, _} -> {error, expired}
    end.

held(Caller, Ref, Mod, Bin, Opts, Hold) ->
    %% Orrery's node (opts owner): when it goes away mid-swap, abort at once.
    Owner = case maps:get(owner, Opts, nil) of
                O when is_atom(O), O =/= nil -> erlang:monitor_node(O, true), O;
                _ -> nil
            end,
    case prepare_swap(Mod, Bin, Opts) of
        {ok, Info, Undo} ->
            Caller ! {Ref, {ok, Info#{token => self()}}},
            receive
                {swap_finish, From, FRef, What} -> From ! {FRef, finish_swap(What, Undo)};
                {nodedown, Owner} -> finish_swap(abort, Undo)
            after Hold ->
                finish_swap(abort, Undo)
            end;
        Error ->
            Caller ! {Ref, Error}
    end.

%% The old code of Mod purged without killing anyone: processes in a loop of the old code
%% usually move to the current code soon (their next fully qualified call), so wait up
%% to Ms for that before refusing.
old_code_freed(Mod, Ms) ->
    case code:soft_purge(Mod) of
        true -> true;
        false when Ms =< 0 -> false;
        false -> receive after 20 -> old_code_freed(Mod, Ms - 20) end
    end.

%% Processes (other than the module's own suspended gen processes, and processes paused
%% at a breakpoint) that run Mod's code now: short-lived ones finish within Ms; the ones
%% left after that run a loop in Mod (a receive loop of a Task or spawned process, an
%% acceptor). [{Pid, {M, F, A}}].
looping(Mod, Ms) ->
    case in_code(Mod) of
        [] -> [];
        L when Ms =< 0 -> L;
        _ -> receive after 50 -> looping(Mod, Ms - 50) end
    end.

in_code(Mod) ->
    lists:filtermap(
      fun(P) when P =:= self() -> false;
         (P) ->
              case erlang:process_info(P, current_stacktrace) of
                  {current_stacktrace, [{orrery_dbg_v1, _, _, _} | _]} -> false;
                  {current_stacktrace, St} ->
                      case lists:keyfind(Mod, 1, St) of
                          {M, F, A, _} -> {true, {P, {M, F, arity(A)}}};
                          false -> false
                      end;
                  _ -> false
              end
      end, erlang:processes()).

in_old_code(Mod) ->
    [P || P <- erlang:processes(), P =/= self(), erlang:check_process_code(P, Mod)].

arity(A) when is_list(A) -> length(A);
arity(A) -> A.

%% Everything but the resume: {ok, Info, Undo} with the processes still suspended, or
%% {error, Reason} with every process resumed.
prepare_swap(Mod, Bin, Opts) ->
    Timeout = maps:get(timeout, Opts, 5000),
    Extra = maps:get(extra, Opts, []),
    Loaded = code:is_loaded(Mod),
    %% A module nobody loaded yet keeps the path the code server would load it from.
    File = case Loaded of
               {file, F} when is_list(F) -> F;
               _ ->
                   case code:which(Mod) of
                       W when is_list(W) -> W;
                       _ -> maps:get(file, Opts, atom_to_list(Mod) ++ ".beam")
                   end
           end,
    OldMd5 = case Loaded of false -> nil; _ -> erlang:get_module_info(Mod, md5) end,
    OldVsn = vsn_of(Mod),
    Prev = case maps:get(previous, Opts, nil) of
               nil -> first_matching([maps:get(was, Opts, nil), disk_binary(Mod, OldMd5)],
                                     OldMd5);
               P -> P
           end,
    Wait = maps:get(old_wait, Opts, 3000),
    case erlang:check_old_code(Mod) andalso not old_code_freed(Mod, Wait) of
        true ->
            {error, {old_code_in_use, Mod, in_old_code(Mod)}};
        false ->
          case looping(Mod, Wait) of
            [_ | _] = Loops ->
                %% Loaded now, the new code would never reach them, and the old code they
                %% keep would block every later load until they restart.
                {error, {loops_in_code, Mod, Loops}};
            [] ->
            case suspend_all(otp_procs(Mod), Timeout, []) of
                {error, Who, Why} ->
                    {error, {suspend_failed, Who, Why}};
                {ok, Procs} ->
                    Result = try do_swap(Mod, File, Bin, Prev, Procs, OldVsn, Extra, Timeout, OldMd5)
                             catch C:R -> {error, {C, R}}
                             end,
                    case Result of
                        {ok, Info, States} ->
                            {ok, Info, {Mod, File, Prev, OldMd5, Procs, States, Timeout,
                                        journal(Mod, Prev, Opts)}};
                        Error ->
                            resume_all(Procs, Timeout),
                            Error
                    end
            end
          end
    end.

%% Resume the processes of a prepared swap; on abort first put the previous code (or no
%% code, for a module that was not loaded before) and the backed-up states back.
finish_swap(commit, {Mod, _File, _Prev, _OldMd5, Procs, _States, Timeout, Journal}) ->
    try Journal() catch _:_ -> ok end,
    resume_all(Procs, Timeout),
    %% The replaced code goes once nobody runs it (never killing anyone), so a later load
    %% by someone else (mix, a code reloader) cannot kill a process still in it.
    _ = code:soft_purge(Mod),
    ok;
finish_swap(abort, {Mod, File, Prev, OldMd5, Procs, States, Timeout, _}) ->
    R = try
            case {Prev, OldMd5} of
                {nil, nil} ->
                    _ = orrery_counts_v1:delete(Mod),
                    _ = code:soft_purge(Mod),
                    ok;
                _ ->
                    case restore(Mod, File, Prev, States, Timeout) of
                        {module, Mod} -> ok;
                        Other -> {error, Other}
                    end
            end
        catch C:E -> {error, {C, E}}
        end,
    resume_all(Procs, Timeout),
    R.

resume_all(Procs, Timeout) ->
    [case try sys:resume(P, Timeout) catch _:_ -> error end of
         ok -> ok;
         _ -> queue_resume(P)
     end || P <- Procs],
    ok.

do_swap(Mod, File, Bin, Prev, Procs, OldVsn, Extra, Timeout, OldMd5) ->
    States = [{P, caught(fun() -> sys:get_state(P, Timeout) end)} || P <- Procs],
    case orrery_counts_v1:load(Mod, File, Bin) of
        {module, Mod} ->
            NewVsn = vsn_of(Mod),
            %% sys:change_code only for modules that define code_change/3 (a module written
            %% against @behaviour GenServer without `use GenServer` may not); supervisors'
            %% code_change is the supervisor module's.
            Migrate = case NewVsn =:= OldVsn of
                          true -> [];
                          false -> [P || P <- Procs, migrates(P, Mod)]
                      end,
            case change_all(Migrate, Mod, OldVsn, Extra, Timeout) of
                ok ->
                    {ok, #{md5_before => OldMd5,
                           md5_after => erlang:get_module_info(Mod, md5),
                           processes => length(Procs),
                           migrated => length(Migrate),
                           previous => Prev}, States};
                {error, Who, Why} ->
                    Restored = restore(Mod, File, Prev, States, Timeout),
                    {error, {code_change_failed, Who, Why, Restored}}
            end;
        {error, Why} ->
            {error, {load_failed, Why}}
    end.

migrates(P, Mod) ->
    case erlang:process_info(P, dictionary) of
        {dictionary, D} ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {supervisor, Mod, _}} -> true;
                _ -> erlang:function_exported(Mod, code_change, 3)
            end;
        _ -> false
    end.

restore(_Mod, _File, nil, _States, _Timeout) -> no_previous_binary;
restore(Mod, File, Prev, States, Timeout) ->
    _ = code:soft_purge(Mod),
    Loaded = orrery_counts_v1:load(Mod, File, Prev),
    [try sys:replace_state(P, fun(_) -> S end, Timeout) catch _:_ -> ok end
     || {P, S} <- States,
                                                            not is_tuple(S) orelse element(1, S) =/= 'EXIT'],
    Loaded.

change_all([], _, _, _, _) -> ok;
change_all([P | Ps], Mod, OldVsn, Extra, Timeout) ->
    case caught(fun() -> sys:change_code(P, Mod, OldVsn, Extra, Timeout) end) of
        ok -> change_all(Ps, Mod, OldVsn, Extra, Timeout);
        {'EXIT', {timeout, _}} -> {error, P, hung};
        Other ->
            case is_process_alive(P) of
                true -> {error, P, Other};
                %% It exited meanwhile: nothing left to migrate.
                false -> change_all(Ps, Mod, OldVsn, Extra, Timeout)
            end
    end.

%% {ok, Suspended} | {error, Pid, Why} with every process resumed. A process that exits
%% while it is being suspended has nothing to migrate: it is skipped. A suspend that timed
%% out still sits in the process's mailbox: a resume is queued behind it, so the process
%% goes on when it gets to them.
suspend_all([], _, Done) -> {ok, lists:reverse(Done)};
suspend_all([P | Ps], Timeout, Done) ->
    case caught(fun() -> sys:suspend(P, Timeout) end) of
        ok -> suspend_all(Ps, Timeout, [P | Done]);
        Other ->
            case is_process_alive(P) of
                false ->
                    suspend_all(Ps, Timeout, Done);
                true ->
                    queue_resume(P),
                    [try sys:resume(D, Timeout) catch _:_ -> ok end || D <- Done],
                    Why = case Other of
                              {'EXIT', {timeout, _}} -> busy;
                              _ -> Other
                          end,
                    {error, P, Why}
            end
    end.

%% What `catch F()` gives (`{'EXIT', Reason}` for an exit or an error), without the form
%% OTP 29 deprecates.
caught(F) ->
    try F()
    catch throw:T -> T;
          exit:R -> {'EXIT', R};
          error:R:St -> {'EXIT', {R, St}}
    end.

%% A resume for a process that may not read its system messages yet: sent, not awaited.
queue_resume(P) ->
    Tag = make_ref(),
    P ! {system, {self(), Tag}, resume},
    ok.

%% OTP processes whose gen callback module is Mod (started by proc_lib as
%% gen_server/gen_statem/gen_event/supervisor of Mod: '$initial_call' is {Mod, init, 1}, or
%% {supervisor, Mod, 1}). Not: Agents and Tasks (their '$initial_call' names the user's
%% fun, {Mod, '-fun-...', N}, but their callback module is Agent.Server / Task), plain
%% proc_lib processes and spawned loops: for those the module is only loaded.
otp_procs(Mod) ->
    [P || P <- erlang:processes(), P =/= self(),
          case erlang:process_info(P, dictionary) of
              {dictionary, D} ->
                  case lists:keyfind('$initial_call', 1, D) of
                      {_, {supervisor, Mod, _}} -> true;
                      {_, {Mod, init, 1}} -> true;
                      _ -> false
                  end;
              _ -> false
          end].

%% What to tell the guard when the swap is committed (Opts kind): instrumented code keeps
%% the binary that matches the source for the guard to put back; anything else is plain
%% code again.
journal(Mod, Prev, Opts) ->
    case maps:get(kind, Opts, edit) of
        instrument ->
            case maps:get(restore_to, Opts, nil) of
                B when is_binary(B) -> fun() -> orrery_guard_v1:set_restore(Mod, B, true) end;
                _ when is_binary(Prev) -> fun() -> orrery_guard_v1:set_restore(Mod, Prev, false) end;
                %% Nobody had loaded it: at the end it is unloaded again.
                _ -> fun() -> orrery_guard_v1:set_restore(Mod, unload, false) end
            end;
        _ ->
            fun() -> orrery_guard_v1:clear_restore(Mod), orrery_guard_v1:swapped(Mod) end
    end.

vsn_of(Mod) ->
    case code:is_loaded(Mod) of
        false -> undefined;
        _ ->
            Attrs = erlang:get_module_info(Mod, attributes),
            case lists:keyfind(vsn, 1, Attrs) of
                {vsn, [V]} -> V;
                {vsn, V} -> V;
                false -> undefined
            end
    end.

%% The first binary that is the code loaded now (md5 Md5).
first_matching([], _Md5) -> nil;
first_matching([B | Rest], Md5) when is_binary(B), Md5 =/= nil ->
    case beam_lib:md5(B) of
        {ok, {_, Md5}} -> B;
        _ -> first_matching(Rest, Md5)
    end;
first_matching([_ | Rest], Md5) -> first_matching(Rest, Md5).

%% The module's beam on disk, when it is what is loaded now.
disk_binary(_Mod, nil) -> nil;
disk_binary(Mod, Md5) ->
    case code:get_object_code(Mod) of
        {Mod, B, _} ->
            case beam_lib:md5(B) of
                {ok, {_, Md5}} -> B;
                _ -> nil
            end;
        error -> nil
    end.
