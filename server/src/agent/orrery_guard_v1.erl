%% Orrery's guard on the target node: the part of the agent that makes sure the node ends
%% as it was found, whatever happens to Orrery. Loaded with the agent, removed last.
%%
%% Every Orrery attached to this node is an owner (a stable id per Orrery session, and the
%% hidden node it connects from, monitored with monitor_node). Pieces that change the node
%% leave an undo entry for their owner (undo_on_loss/3): the debugger ("stop: resume every
%% paused process, disarm, put the code that matches the source back"), call tracing,
%% call times, call counts (orrery_counts_v1, whose table orrery_guard_v1_counts the guard
%% owns, so it goes with the guard). Instrumented modules leave the binary to restore (set_restore/3).
%%
%% When an owner's node goes away and the owner does not attach again within the grace
%% period, the guard runs that owner's undo entries itself; when no owner is left it also
%% restores every instrumented module, removes every module Orrery loaded (and the OTP
%% library modules loading them pulled in) and finally itself. A clean detach (release/1)
%% runs the very same steps at once. The guard answers gen calls ('$gen_call'), so callers
%% can use gen_server:call/3 and never run this module's code while it removes itself.
%%
%% Trace sessions (OTP 27+, module `trace`): where the node has them, Orrery's tracing
%% (call counts, call times, traced calls) lives in sessions of its own, so it never
%% takes a process or a pattern from the node's global tracing that dbg, recon_trace and
%% redbug use. The guard creates them and holds their handles (session/2): the runtime
%% destroys a session whose handle nobody holds, so the guard dying takes them along;
%% but a session does NOT end when its tracer dies (its call_count and call_time patterns
%% keep counting; seen on OTP 27 and 29), so every path out destroys them explicitly
%% (end_session/1, and all of them at cleanup). Calls to `trace` go through apply/3: this
%% file compiles and loads on OTP 25, where the module does not exist.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_guard_v1).
-export([attach/3, undo_on_loss/3, forget_undo/2, set_restore/3, clear_restore/1,
         restore_targets/0, restore_all/0, end_debug/0, status/0, init/1, swapped/1]).
-export([sessions/0, session/2, session_of/1, end_session/1]).

%% Modules Orrery loads, removed in this order; the guard itself goes last.
ours() ->
    [orrery_phoenix_v1, orrery_swap_v1, orrery_counts_v1, orrery_views_v1, orrery_names_v1,
     orrery_calltime_v1, orrery_trace_v1, orrery_dbg_v1_armed, orrery_dbg_v1, orrery_agent_v1].

%% Register (or re-register, after a reconnect) owner Id connected from Node.
%% Opts: #{grace => Ms, before => [Module], loaded_by_us => [Module]}.
attach(Id, Node, Opts) when is_atom(Node), is_map(Opts) ->
    Pid = ensure_started(),
    gen_server:call(Pid, {attach, Id, Node, Opts}, 30000).

%% Run MFA for owner Id if it goes away (or detaches); Key replaces an earlier entry.
undo_on_loss(Id, Key, {M, F, A}) when is_atom(M), is_atom(F), is_list(A) ->
    Prio = case Key of debugger -> 0; _ -> 1 end,
    ets:insert(orrery_guard_v1_undo, {{Id, Key}, Prio, {M, F, A}}),
    ok.

forget_undo(Id, Key) ->
    try ets:delete(orrery_guard_v1_undo, {Id, Key}) catch _:_ -> ok end,
    ok.

%% The binary that matches the source of an instrumented module. Force = false keeps an
%% earlier entry (a second instrumentation of the same code).
set_restore(Mod, Bin, Force) when is_atom(Mod), (is_binary(Bin) orelse Bin =:= unload) ->
    case Force orelse not ets:member(orrery_guard_v1_restore, Mod) of
        true -> ets:insert(orrery_guard_v1_restore, {Mod, Bin});
        false -> ok
    end,
    ok.

clear_restore(Mod) ->
    try ets:delete(orrery_guard_v1_restore, Mod) catch _:_ -> ok end,
    ok.

%% A module Orrery swapped: its replaced code is purged when Orrery leaves, once no
%% process runs it (a loop of the old code moves on at its next qualified call).
swapped(Mod) ->
    try ets:insert(orrery_guard_v1_restore, {{swapped, Mod}, true}) catch _:_ -> ok end,
    ok.

restore_targets() ->
    try [E || E = {M, _} <- ets:tab2list(orrery_guard_v1_restore), is_atom(M)]
    catch _:_ -> []
    end.

%% Load the source's code back into every instrumented module. [{Mod, ok | Reason}].
restore_all() ->
    [{Mod, restore_one(Mod, Bin)} || {Mod, Bin} <- restore_targets()].

restore_one(Mod, unload) ->
    %% Instrumented without having been loaded before: not loaded again after.
    _ = try orrery_counts_v1:delete(Mod) catch _:_ -> code:delete(Mod) end,
    case purge_when_free(Mod, 100) of
        true -> clear_restore(Mod), ok;
        false -> in_use
    end;
restore_one(Mod, Bin) ->
    R = try orrery_swap_v1:swap(Mod, Bin, #{kind => restore, timeout => 5000})
        catch C:E -> {error, {C, E}}
        end,
    case R of
        {ok, _} -> clear_restore(Mod), purge_when_free(Mod, 100), ok;
        {error, Why} -> Why
    end.

%% The instrumented code, once no process runs it (short-lived processes finish).
purge_when_free(_Mod, 0) -> false;
purge_when_free(Mod, N) ->
    case code:soft_purge(Mod) of
        true -> true;
        false -> receive after 20 -> purge_when_free(Mod, N - 1) end
    end.

%% What a debug session leaves behind, undone: resume and disarm, then the code back.
end_debug() ->
    try orrery_dbg_v1:stop() catch _:_ -> ok end,
    restore_all().

status() ->
    case whereis(orrery_guard_v1) of
        undefined -> #{running => false};
        Pid -> gen_server:call(Pid, status, 10000)
    end.

%% ---- trace sessions --------------------------------------------------------------------

%% Does this node have trace sessions? Asked of the node (the `trace` module exporting
%% session_create/3), never of its version; the answer is kept while the guard runs.
sessions() ->
    try ets:lookup(orrery_guard_v1_trace, available) of
        [{available, A}] -> A;
        [] ->
            A = has_sessions(),
            ets:insert(orrery_guard_v1_trace, {available, A}),
            A
    catch _:_ -> has_sessions()
    end.

has_sessions() ->
    case code:ensure_loaded(trace) of
        {module, trace} -> erlang:function_exported(trace, session_create, 3);
        _ -> false
    end.

%% The session Name of Orrery, traced into Tracer: the one the guard holds, or a new one
%% (one whose tracer differs, e.g. a restarted relay, is destroyed first). Its handle, or
%% none where the node has no sessions.
session(Name, Tracer) when is_atom(Name), is_pid(Tracer) ->
    case sessions() of
        false -> none;
        true -> gen_server:call(orrery_guard_v1, {session, Name, Tracer}, 15000)
    end.

%% The handle of Orrery's session Name, or none.
session_of(Name) ->
    try ets:lookup(orrery_guard_v1_trace, {session, Name}) of
        [{_, H, _}] -> H;
        [] -> none
    catch _:_ -> none
    end.

%% Destroy Orrery's session Name (its patterns and flags go with it). ok.
end_session(Name) ->
    case session_of(Name) of
        none -> ok;
        H ->
            try erlang:apply(trace, session_destroy, [H]) catch _:_ -> ok end,
            try ets:delete(orrery_guard_v1_trace, {session, Name}) catch _:_ -> ok end,
            ok
    end.

new_session(Name, Tracer) ->
    case ets:lookup(orrery_guard_v1_trace, {session, Name}) of
        [{_, H, Tracer}] -> H;
        [{_, _, _}] -> end_session(Name), new_session(Name, Tracer);
        [] ->
            try erlang:apply(trace, session_create, [Name, Tracer, []]) of
                H ->
                    ets:insert(orrery_guard_v1_trace, {{session, Name}, H, Tracer}),
                    H
            catch _:_ -> none
            end
    end.

%% Every session Orrery made, destroyed.
end_sessions() ->
    [end_session(N) || {{session, N}, _, _} <- ets:tab2list(orrery_guard_v1_trace)],
    ok.

%% ---- the guard process ----------------------------------------------------------------

ensure_started() ->
    case whereis(orrery_guard_v1) of
        undefined ->
            Parent = self(),
            Ref = make_ref(),
            {Pid, MRef} = spawn_monitor(orrery_guard_v1, init, [{Parent, Ref}]),
            receive
                {Ref, started} -> erlang:demonitor(MRef, [flush]), Pid;
                {'DOWN', MRef, process, Pid, _} ->
                    %% Someone else registered it first.
                    case whereis(orrery_guard_v1) of
                        undefined -> erlang:error(guard_did_not_start);
                        Other -> Other
                    end
            after 10000 -> erlang:error(guard_did_not_start)
            end;
        Pid -> Pid
    end.

init({Parent, Ref}) ->
    true = register(orrery_guard_v1, self()),
    process_flag(trap_exit, true),
    ets:new(orrery_guard_v1_undo, [named_table, public, set]),
    ets:new(orrery_guard_v1_restore, [named_table, public, set]),
    ets:new(orrery_guard_v1_trace, [named_table, public, set]),
    %% Call counts kept across Orrery's loads (orrery_counts_v1): gone with the guard.
    ets:new(orrery_guard_v1_counts, [named_table, public, set]),
    Parent ! {Ref, started},
    loop(#{owners => #{}, before => nil, loaded_by_us => [], grace => 10000}).

%% owners: Id => #{node => Node, lost => nil | TimerRef}
loop(S) ->
    receive
        {'$gen_call', From, Req} ->
            case call(Req, From, S) of
                {reply, R, S2} -> gen:reply(From, R), loop(S2);
                {stop, R} -> gen:reply(From, R), remove_self()
            end;
        {nodedown, Node} ->
            loop(lost(Node, S));
        {expire, Id, TRef} ->
            case maps:get(Id, maps:get(owners, S), nil) of
                #{lost := TRef} ->
                    S2 = drop_owner(Id, S),
                    case map_size(maps:get(owners, S2)) of
                        0 -> cleanup(S2), remove_self();
                        _ -> loop(S2)
                    end;
                _ -> loop(S)
            end;
        _ ->
            loop(S)
    end.

call({attach, Id, Node, Opts}, _From, S = #{owners := Owners}) ->
    case maps:get(Id, Owners, nil) of
        #{lost := T} when T =/= nil -> erlang:cancel_timer(T);
        _ -> ok
    end,
    erlang:monitor_node(Node, true),
    Before = case maps:get(before, S) of
                 nil -> maps:get(before, Opts, []);
                 B -> B
             end,
    Loaded = lists:usort(maps:get(loaded_by_us, S) ++ maps:get(loaded_by_us, Opts, [])),
    Grace = maps:get(grace, Opts, maps:get(grace, S)),
    {reply, ok, S#{owners := Owners#{Id => #{node => Node, lost => nil}}, before := Before,
                   loaded_by_us := Loaded, grace := Grace}};
call({session, Name, Tracer}, _From, S) ->
    {reply, new_session(Name, Tracer), S};
call({release, Id}, _From, S) ->
    S2 = drop_owner(Id, S),
    case map_size(maps:get(owners, S2)) of
        0 -> {stop, {last, cleanup(S2)}};
        N -> {reply, {others, N}, S2}
    end;
call(status, _From, S = #{owners := Owners}) ->
    {reply, #{running => true,
              owners => maps:map(fun(_, #{node := N, lost := L}) ->
                                         #{node => N, lost => L =/= nil}
                                 end, Owners),
              undo => [K || {K, _, _} <- ets:tab2list(orrery_guard_v1_undo)],
              restore => [M || {M, _} <- restore_targets()],
              sessions => [N || {{session, N}, _, _} <- ets:tab2list(orrery_guard_v1_trace)],
              counted => [M || {{mod, M}, _, _, _, _}
                               <- ets:tab2list(orrery_guard_v1_counts)]}, S};
call(_, _From, S) ->
    {reply, {error, unknown_request}, S}.

%% Every owner connected from Node is lost: undo their changes after the grace period,
%% unless they attach again.
lost(Node, S = #{owners := Owners, grace := Grace}) ->
    Owners2 = maps:map(
                fun(Id, O = #{node := N, lost := nil}) when N =:= Node ->
                        TRef = make_ref(),
                        erlang:send_after(Grace, self(), {expire, Id, TRef}),
                        O#{lost := TRef};
                   (_, O) -> O
                end, Owners),
    S#{owners := Owners2}.

%% Run an owner's undo entries (the debugger first) and forget the owner.
drop_owner(Id, S = #{owners := Owners}) ->
    Entries = lists:keysort(2, [E || E = {{I, _}, _, _} <- ets:tab2list(orrery_guard_v1_undo),
                                     I =:= Id]),
    [begin
         try erlang:apply(M, F, A) catch _:_ -> ok end,
         ets:delete(orrery_guard_v1_undo, K)
     end || {K, _, {M, F, A}} <- Entries],
    S#{owners := maps:remove(Id, Owners)}.

%% No owner left: everything Orrery did goes, then the modules it loaded.
%% Returns #{restored => [{Mod, Result}], left => [Module]}.
cleanup(#{before := Before, loaded_by_us := LoadedByUs}) ->
    [try erlang:apply(M, F, A) catch _:_ -> ok end
     || {_, _, {M, F, A}} <- ets:tab2list(orrery_guard_v1_undo)],
    try orrery_dbg_v1:stop() catch _:_ -> ok end,
    Restored = restore_all(),
    try orrery_trace_v1:stop_all() catch _:_ -> ok end,
    try orrery_calltime_v1:stop() catch _:_ -> ok end,
    try orrery_counts_v1:stop_all() catch _:_ -> ok end,
    end_sessions(),
    [purge_when_free(M, 150) || {{swapped, M}, _} <- ets:tab2list(orrery_guard_v1_restore)],
    Left = unload_libs(before_set(Before), LoadedByUs) ++ unload_ours(),
    #{restored => Restored, left => Left}.

before_set(nil) -> #{};
before_set(L) -> maps:from_list([{M, true} || M <- L]).

%% OTP library modules (compiler, stdlib) that were not loaded before Orrery came and that
%% loading the agent pulled in, plus beam_lib and sys (state reads) and trace (sessions).
%% Nothing another process runs is removed. Returns the modules left loaded.
unload_libs(Before, LoadedByUs) ->
    Libs = [D ++ "/" || App <- [compiler, stdlib],
                        D <- [code:lib_dir(App)], is_list(D)],
    Mine = maps:from_list([{M, true} || M <- LoadedByUs ++ [beam_lib, sys]]),
    Kernel = case code:lib_dir(kernel) of D2 when is_list(D2) -> [D2 ++ "/"]; _ -> [] end,
    Cands = [M || {M, F} <- code:all_loaded(), is_list(F),
                  not maps:is_key(M, Before), maps:is_key(M, Mine),
                  not lists:member(M, ours()), M =/= orrery_guard_v1,
                  lists:any(fun(L) -> lists:prefix(L, F) end, Libs)]
        ++ [trace || {trace, F} <- code:all_loaded(), is_list(F),
                     not maps:is_key(trace, Before),
                     lists:any(fun(L) -> lists:prefix(L, F) end, Kernel)],
    lists:filtermap(fun(M) ->
                            case code:soft_purge(M) andalso code:delete(M)
                                andalso code:soft_purge(M) of
                                true -> false;
                                false ->
                                    %% Someone runs it: keep it current.
                                    _ = code:ensure_loaded(M),
                                    {true, M}
                            end
                    end, Cands).

%% Our own modules. The debugger runtime may still be run by instrumented code that could
%% not be restored: it is removed only once no process runs it.
unload_ours() ->
    lists:filtermap(fun(M) -> case unload_one(M) of ok -> false; left -> {true, M} end end,
                    ours()).

unload_one(M) ->
    case code:is_loaded(M) of
        false -> ok;
        _ ->
            case M of
                orrery_dbg_v1 -> soft_unload(M, 50);
                orrery_dbg_v1_armed -> soft_unload(M, 50);
                _ ->
                    _ = code:purge(M),
                    _ = code:delete(M),
                    _ = code:purge(M),
                    ok
            end
    end.

soft_unload(M, 0) -> _ = code:is_loaded(M), left;
soft_unload(M, N) ->
    _ = code:soft_purge(M),
    case code:delete(M) andalso code:soft_purge(M) of
        true -> ok;
        false ->
            case code:is_loaded(M) of
                false -> ok;
                _ -> receive after 20 -> soft_unload(M, N - 1) end
            end
    end.

%% The last step: this module goes too. The purge runs in a process that runs only OTP
%% code, after this one has exited.
remove_self() ->
    _ = code:purge(orrery_guard_v1),
    _ = code:delete(orrery_guard_v1),
    _ = erlang:spawn(code, purge, [orrery_guard_v1]),
    exit(normal).
